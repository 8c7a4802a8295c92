"""`run_request`: claim a background request (`veil.core.requests`), run it, and record how it ended.

A run writes its result files to storage and adds their rows (and, restoring a backup, the new task's) to
one session, which is committed with the request marked finished, only if the request is still `started`:
a request cancelled meanwhile keeps nothing, and its stored bytes are deleted. A failure keeps nothing
either, and its message (`message`) says why for a person. The request's uploaded input is deleted once
the run ends, whatever the end (`request_with_input` puts it in the request's folder).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from veil.core.backups import restore_backup, write_backup
from veil.core.errors import ServiceError
from veil.core.models import ApiKey, BackgroundRequest, StoredFile, Task, utc_now
from veil.engine.errors import AnnotationError
from veil.worker.context import WorkerContext
from veil.worker.failures import describe_failure

__all__ = ["run_request"]

log = logging.getLogger(__name__)


class _Cancelled(Exception):
    """The request is no longer `started`: cancelled by its client."""


@dataclass
class Run:
    """One run of a request: its row as claimed, the session its results go to, a scratch folder, and the
    storage keys written so far (deleted when the results are not committed)."""

    context: WorkerContext
    request: BackgroundRequest
    session: Session
    scratch: Path
    keys: list[str] = field(default_factory=list)
    result_file_id: str | None = None
    made_task_id: str | None = None
    _beat_at: float = 0.0

    def progress(self, fraction: float) -> None:
        """Records progress (at most once per beat interval) and stops the run when it was cancelled."""
        now = time.monotonic()
        if now - self._beat_at < self.context.beat_interval_s and fraction < 1:
            return
        self._beat_at = now
        with self.context.sessions() as session:
            running = session.scalar(
                update(BackgroundRequest)
                .where(BackgroundRequest.id == self.request.id, BackgroundRequest.status == "started")
                .values(progress=min(max(fraction, 0.0), 1.0))
                .returning(BackgroundRequest.id)
            )
            session.commit()
        if running is None:
            raise _Cancelled

    def store_result(self, staged: Path, key: str, media_type: str) -> StoredFile:
        """Stores the file staged at `staged` (from `storage.staging_path(key)`) as the request's result
        file, a file of its owner that lasts the files' lifespan; its row is added to the run's session."""
        size = self.context.storage.commit(staged, key)
        self.keys.append(key)
        record = StoredFile(
            owner_id=self.request.owner_id,
            name=Path(key).name,
            media_type=media_type,
            size=size,
            properties={"size": size},
            storage_key=key,
            expires_at=utc_now() + timedelta(seconds=self.context.settings.file_lifespan_s),
        )
        self.session.add(record)
        self.session.flush()
        self.result_file_id = record.id
        return record

    def owner(self) -> ApiKey:
        return self.session.get_one(ApiKey, self.request.owner_id)

    def task(self) -> Task:
        return self.session.get_one(Task, self.request.task_id)


Runner = Callable[[Run], None]


def run_request(context: WorkerContext, request_id: str) -> None:
    """Runs the request if this call claims it; does nothing when it is running elsewhere or has ended."""
    request = _claim(context, request_id)
    if request is None:
        log.info("request %s is running elsewhere or has ended; nothing to do", request_id)
        return
    log.info("request %s (%s) started", request_id, request.operation)
    folder = f"{request.owner_id}/{request_id}"  # its uploaded input, and its result file
    try:
        with _scratch(context, request_id) as scratch, context.sessions() as session:
            run = Run(context, request, session, scratch)
            try:
                _RUNNERS[request.operation](run)
                _finish(run)
            except BaseException:
                session.rollback()
                for key in run.keys:
                    context.storage.delete(key)
                context.storage.delete_tree(folder)
                raise
    except _Cancelled:
        log.info("request %s was cancelled; its results are deleted", request_id)
    except Exception as exc:
        _fail(context, request_id, _message(context, exc))
    finally:
        context.storage.delete_tree(f"{folder}/input")


def _export_backup(run: Run) -> None:
    task = run.task()
    key = f"{run.request.owner_id}/{run.request.id}/{task.id}-backup.zip"
    staged = run.context.storage.staging_path(key)
    try:
        write_backup(run.session, run.context.storage, task=task, target=staged, progress=run.progress)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    run.store_result(staged, key, "application/zip")


def _import_backup(run: Run) -> None:
    storage = run.context.storage
    with storage.local_copy(str(run.request.parameters["input_key"]), run.scratch) as archive:
        restored = restore_backup(
            run.session,
            storage,
            settings=run.context.settings,
            owner=run.owner(),
            archive=archive,
            scratch=run.scratch,
        )
    run.keys.extend(restored.keys)
    run.made_task_id = restored.task.id


_RUNNERS: dict[str, Runner] = {"export:backup": _export_backup, "import:backup": _import_backup}


def _claim(context: WorkerContext, request_id: str) -> BackgroundRequest | None:
    with context.sessions() as session:
        claimed = session.scalar(
            update(BackgroundRequest)
            .where(BackgroundRequest.id == request_id, BackgroundRequest.status == "queued")
            .values(status="started", updated_at=utc_now())
            .returning(BackgroundRequest)
        )
        session.commit()
        return claimed


def _finish(run: Run) -> None:
    """Marks the request finished with its results, in the transaction that adds them.

    Raises:
        _Cancelled: it is no longer started; nothing was committed.
    """
    now = utc_now()
    values: dict[str, Any] = {
        "status": "finished",
        "progress": 1.0,
        "finished_at": now,
        "updated_at": now,
        "result_file_id": run.result_file_id,
        "expires_at": now + timedelta(seconds=run.context.settings.file_lifespan_s),
    }
    if run.made_task_id is not None:
        values["task_id"] = run.made_task_id
    finished = run.session.scalar(
        update(BackgroundRequest)
        .where(BackgroundRequest.id == run.request.id, BackgroundRequest.status == "started")
        .values(**values)
        .returning(BackgroundRequest.id)
    )
    if finished is None:
        raise _Cancelled
    run.session.commit()
    log.info("request %s finished", run.request.id)


def _fail(context: WorkerContext, request_id: str, message: str) -> None:
    now = utc_now()
    with context.sessions() as session:
        session.execute(
            update(BackgroundRequest)
            .where(BackgroundRequest.id == request_id, BackgroundRequest.status == "started")
            .values(status="failed", message=message[:2000], finished_at=now, updated_at=now)
        )
        session.commit()
    log.info("request %s failed: %s", request_id, message)


def _message(context: WorkerContext, exc: Exception) -> str:
    """The service layer's and the annotations library's messages as they are; else the title and detail
    a task's failure would show."""
    if isinstance(exc, ServiceError | AnnotationError):
        return str(exc)
    described = describe_failure(exc, context.settings)
    return f"{described['title']}: {described['detail']}."


@contextmanager
def _scratch(context: WorkerContext, request_id: str) -> Iterator[Path]:
    """`<scratch dir>/<request id>`, made 0700 and removed after the block (the staging folder is for
    tasks' attempts: maintenance removes what no started task owns there)."""
    folder = context.settings.scratch_dir / request_id
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
