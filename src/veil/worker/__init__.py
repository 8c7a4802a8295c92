"""The worker: Celery task functions that run the engine on queued tasks (`celery_app.create_worker_app`)."""

__all__: list[str] = []
