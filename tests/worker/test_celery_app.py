"""The worker's Celery app: the task names the server sends, run through Celery without a broker, and the
worker's beat row."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from tests.helpers import save_image
from tests.worker.conftest import submit, task_row, upload
from veil.core.database.models import ApiKey, WorkerBeat
from veil.core.queue import DELIVER_CALLBACK, RUN_SEGMENT, RUN_TASK
from veil.core.settings import Settings
from veil.engine.detections import Detections
from veil.worker.celery_app import create_worker_app
from veil.worker.context import WorkerContext
from veil.worker.heartbeat import WorkerHeartbeat


def test_registers_the_task_names_the_server_sends(settings: Settings) -> None:
    app = create_worker_app(settings)
    assert {RUN_TASK, RUN_SEGMENT, DELIVER_CALLBACK} <= set(app.tasks.keys())
    assert app.tasks[RUN_TASK].soft_time_limit == settings.task_time_limit_s - 30


def test_run_task_through_celery(
    settings: Settings, context: WorkerContext, owner: ApiKey, tmp_path: Path, one_face: Detections
) -> None:
    """The Celery task opens its own database and storage from the settings, as a worker process does."""
    source = upload(context, owner, save_image(tmp_path / "photo.png"))
    task_id = submit(context, owner, source.id)
    result = create_worker_app(settings).tasks[RUN_TASK].apply(args=[task_id])
    assert result.successful(), result.traceback
    assert task_row(context, task_id).status == "completed"


def test_worker_beat_row_lives_while_the_worker_runs(context: WorkerContext, settings: Settings) -> None:
    beat = WorkerHeartbeat(settings.database_url, interval_s=0.01)
    beat.start()
    try:
        first = _seen(context, beat.name)
        assert first is not None
        deadline = time.monotonic() + 5
        while (_seen(context, beat.name) or first) <= first and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (_seen(context, beat.name) or first) > first
    finally:
        beat.stop()
    assert _seen(context, beat.name) is None


def _seen(context: WorkerContext, name: str) -> object:
    with context.sessions() as session:
        return session.scalar(select(WorkerBeat.seen_at).where(WorkerBeat.name == name))
