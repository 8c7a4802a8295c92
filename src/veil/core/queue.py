"""The Celery application as the server sees it: a broker to send task ids to, nothing more.

Messages carry only a task id as JSON (never pickles); the worker loads everything else from the
database. The worker registers the task functions on the same app (`veil.worker.celery_app`).
"""

from __future__ import annotations

from celery import Celery

from veil.core.broker import embedded_broker_url
from veil.core.settings import Settings

__all__ = ["DELIVER_CALLBACK", "RUN_TASK", "TaskQueue", "create_celery"]

RUN_TASK = "veil.run_task"
DELIVER_CALLBACK = "veil.deliver_callback"


def create_celery(settings: Settings) -> Celery:
    """A Celery app on `settings.broker_url` that acknowledges a message only after its task finished, so
    a worker killed mid-task leaves the message to be delivered again."""
    app = Celery("veil", broker=embedded_broker_url(settings.broker_url), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_time_limit=settings.task_time_limit_s,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


class TaskQueue:
    """Sends work to the workers by task id."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, task_id: str) -> None:
        self.celery.send_task(RUN_TASK, args=[task_id])

    def enqueue_callback(self, task_id: str) -> None:
        self.celery.send_task(DELIVER_CALLBACK, args=[task_id])
