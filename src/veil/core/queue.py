"""The Celery application as the server sees it: a broker to send task ids to, nothing more.

Messages carry only a task id as JSON (never pickles); the worker loads everything else from the
database. The worker registers the task functions on the same app (`veil.worker.celery_app`).

Tasks wait in one of three queues, so that each kind of worker takes only what it is for: `photo`
(short, many), `video` (long) and `gpu` (a task that asked for a GPU with `parameters.device`). A
task's queue is chosen once, when it is created (`route`), and kept in its row, so that whoever sends
it again sends it to the same queue. Callback deliveries have a queue of their own that every worker
takes, as they are short and any worker can make them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Literal, NamedTuple

from celery import Celery, group

from veil.core.broker import embedded_broker_url
from veil.core.settings import Settings

__all__ = [
    "CALLBACK_QUEUE",
    "DELIVER_CALLBACK",
    "GPU_QUEUE",
    "MAX_RETRY_DELAY_S",
    "PHOTO_QUEUE",
    "RUN_REQUEST",
    "RUN_SEGMENT",
    "RUN_TASK",
    "TASK_QUEUES",
    "VIDEO_QUEUE",
    "MediaKind",
    "Queued",
    "TaskQueue",
    "create_celery",
    "route",
]

RUN_TASK = "veil.run_task"
DELIVER_CALLBACK = "veil.deliver_callback"
RUN_SEGMENT = "veil.run_segment"
RUN_REQUEST = "veil.run_request"

PHOTO_QUEUE = "photo"
VIDEO_QUEUE = "video"
GPU_QUEUE = "gpu"
TASK_QUEUES = (PHOTO_QUEUE, VIDEO_QUEUE, GPU_QUEUE)
CALLBACK_QUEUE = "callbacks"

MAX_RETRY_DELAY_S = 600.0
"""The longest wait between two attempts at a callback."""

MediaKind = Literal["photo", "video"]


class Queued(NamedTuple):
    """A task to send again, with the queue it waits in."""

    task_id: str
    queue: str


def route(kind: MediaKind, device: str) -> str:
    """The queue of a task on `kind` media that asked for `device` ("gpu", or "any" worker)."""
    if device == "gpu":
        return GPU_QUEUE
    return VIDEO_QUEUE if kind == "video" else PHOTO_QUEUE


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
        task_default_queue=PHOTO_QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


class TaskQueue:
    """Sends work to the workers by task id."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, task_id: str, queue: str) -> None:
        """Sends the task to `queue`, the one in its row (`Task.queue`)."""
        self.celery.send_task(RUN_TASK, args=[task_id], queue=queue)

    def enqueue_segments(self, task_id: str, indices: Sequence[int], queue: str) -> None:
        """Sends segments `indices` of the task's video, as one Celery group, to the task's queue; each goes
        to whichever worker takes it (see `veil.worker.segments`)."""
        signatures = [self.celery.signature(RUN_SEGMENT, args=[task_id, i], queue=queue) for i in indices]
        group(signatures).apply_async()

    def enqueue_request(self, request_id: str, queue: str) -> None:
        """Sends a background request (`veil.core.services.requests`) to `queue`, the one in its row."""
        self.celery.send_task(RUN_REQUEST, args=[request_id], queue=queue)

    def enqueue_callback(self, task_id: str, *, attempt: int = 0) -> None:
        """Sends delivery attempt `attempt` (0 = the first) of the task's callback."""
        kwargs = {"attempt": attempt} if attempt else {}
        self.celery.send_task(DELIVER_CALLBACK, args=[task_id], kwargs=kwargs, queue=CALLBACK_QUEUE)

    def messages_waiting(self, queue: str) -> int:
        """How many messages `queue` holds that no worker has taken yet (0 for a queue never made)."""
        with self.celery.connection_for_write() as connection:
            channel = connection.channel()
            try:
                _, count, _ = channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors:  # no such queue: nothing was ever sent to it
                return 0
            finally:
                with contextlib.suppress(*connection.connection_errors, *connection.channel_errors):
                    channel.close()
            return int(count)
