"""What the server and the workers share: settings, database, storage and the task records.

Nothing here touches pixels (that is `veil.engine`) or HTTP (that is `veil.server`).
"""
