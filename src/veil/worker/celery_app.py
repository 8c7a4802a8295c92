"""The Celery application as the worker sees it: the server's app plus the task functions.

Nothing is opened at import or when the app is made. Each process that runs tasks builds its own
`WorkerContext` (database engine, storage, loaded models) on its first task and keeps it, so pool
processes forked by Celery never share database connections, and models load once per process. The
worker's main process keeps a `WorkerBeat` row fresh while it runs.

Recommended worker arguments (`create_worker_app(settings).worker_main([...])`):

    worker --pool=prefork --concurrency=N --without-gossip --without-mingle --without-heartbeat

prefork, even for one process, so the task time limit can stop a stuck task; gossip, mingle and
heartbeat need a fanout exchange, which the SQLAlchemy broker lacks.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery, bootsteps

from veil.core.queue import DELIVER_CALLBACK, RUN_REQUEST, RUN_SEGMENT, RUN_TASK, TaskQueue, create_celery
from veil.core.settings import Settings
from veil.worker.callbacks import deliver_callback
from veil.worker.context import WorkerContext
from veil.worker.heartbeat import WorkerHeartbeat
from veil.worker.requests import run_request
from veil.worker.segment_runs import run_segment
from veil.worker.tasks import run_task

__all__ = ["create_worker_app"]

# The soft limit raises inside the task so it can record why it failed; the hard limit then kills what
# ignored it.
_SOFT_LIMIT_MARGIN_S = 30


def create_worker_app(settings: Settings) -> Celery:
    """A Celery app on `settings.broker_url` with `RUN_TASK`, `RUN_SEGMENT`, `RUN_REQUEST` and
    `DELIVER_CALLBACK` registered."""
    app = create_celery(settings)
    contexts = _ContextPerProcess(settings, app)
    soft_limit = max(1, settings.task_time_limit_s - _SOFT_LIMIT_MARGIN_S)

    def run(task: Any, task_id: str) -> None:
        run_task(contexts.get(), task_id)

    def segment(task: Any, task_id: str, index: int) -> None:
        run_segment(contexts.get(), task_id, index)

    def request(task: Any, request_id: str) -> None:
        run_request(contexts.get(), request_id)

    def deliver(task: Any, task_id: str, attempt: int = 0) -> None:
        # `attempt`: where a delivery the scheduler sent again (its message was lost) carries on from.
        delay = deliver_callback(contexts.get(), task_id, attempt=attempt + task.request.retries)
        if delay is not None:
            raise task.retry(countdown=delay, max_retries=None)

    # Not shared: a shared task is added to every Celery app made later in the process, settings and all.
    app.task(name=RUN_TASK, bind=True, shared=False, soft_time_limit=soft_limit)(run)
    app.task(name=RUN_SEGMENT, bind=True, shared=False, soft_time_limit=soft_limit)(segment)
    app.task(name=RUN_REQUEST, bind=True, shared=False, soft_time_limit=soft_limit)(request)
    app.task(name=DELIVER_CALLBACK, bind=True, shared=False)(deliver)
    app.steps["worker"].add(_heartbeat_step(settings))
    return app


class _ContextPerProcess:
    """The `WorkerContext` of the current process, made on first use (after Celery forked it)."""

    def __init__(self, settings: Settings, app: Celery) -> None:
        self._settings = settings
        self._app = app
        self._lock = threading.Lock()
        self._context: WorkerContext | None = None
        self._pid = 0

    def get(self) -> WorkerContext:
        with self._lock:
            if self._context is None or self._pid != os.getpid():
                self._context = WorkerContext.create(self._settings, TaskQueue(self._app))
                self._pid = os.getpid()
            return self._context


def _heartbeat_step(settings: Settings) -> type[Any]:
    class HeartbeatStep(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery has no type hints
        """Runs a `WorkerHeartbeat` in the worker's main process, started once the pool is up."""

        requires = ("celery.worker.components:Pool",)

        def create(self, worker: Any) -> WorkerHeartbeat:
            return WorkerHeartbeat(settings.database_url)

    return HeartbeatStep
