"""What the server and the workers share, and nothing that touches pixels (that is `veil.engine`) or HTTP
(that is `veil.server`):

    settings.py, errors.py    the one settings object; the service layer's errors
    schemas.py, parameters.py the API's JSON shapes, and the operations' parameters
    database/                 connection and migrations, tables, ids, listings, JSON Logic, leases
    services/                 one module per resource: files, uploads, tasks, requests, keys, BlurIt tasks...
    probing/                  what an uploaded file is, from its content and headers
    safety/                   guards on what clients give: paths, URLs, zips, file permissions
    storage/                  where bytes live: local disk or S3, behind one interface
    queue.py, broker.py       sending work to the workers; the embedded broker of one machine
    scheduler.py, upload_lock.py  periodic jobs run once across processes; one writer per upload
"""
