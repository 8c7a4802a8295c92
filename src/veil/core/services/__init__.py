"""The service layer, one module per resource: what the routes and workers call to create, find, change and
delete files, uploads, tasks, requests, keys and BlurIt-style tasks, and the upkeep that expires them."""
