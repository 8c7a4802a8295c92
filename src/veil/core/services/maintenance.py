"""Periodic upkeep the scheduler runs: delete what expired, queue again tasks whose worker died, and send
again messages the broker lost.

A task's message may be lost with the worker that held it (the embedded broker forgets a message once a
worker has taken it), or with the broker itself (Redis keeps nothing on disk), so the database is what says
which tasks still need running: `started` tasks with a stale heartbeat are queued again, at server start
every `queued` task is sent again, and a queue holding fewer messages than it has queued tasks gets the
long-waiting ones sent again. A worker's claim makes duplicate messages harmless.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, sessionmaker

from veil.core.database.connection import session_scope
from veil.core.database.models import (
    FINAL_STATUSES,
    BackgroundRequest,
    ExpiringPath,
    StoredFile,
    Task,
    Upload,
    utc_now,
)
from veil.core.queue import MAX_RETRY_DELAY_S, TASK_QUEUES, Queued, TaskQueue
from veil.core.safety.paths import FileRoot, PathOutsideRootError
from veil.core.services.tasks import tasks_waiting_on
from veil.core.settings import Settings
from veil.core.storage import Storage

__all__ = ["MAX_ATTEMPTS", "recover_tasks", "resend_lost_messages", "run_maintenance"]

MAX_ATTEMPTS = 3
"""A task whose worker died this many times is failed instead of queued again: its input may be what
kills the worker (memory, a decoder crash)."""

_BATCH = 500  # rows per transaction, so a large backlog never holds SQLite's write lock for long
_ACTIVE = ("queued", "started")

log = logging.getLogger(__name__)


def run_maintenance(
    sessions: sessionmaker[Session], storage: Storage, queue: TaskQueue, settings: Settings
) -> None:
    """One pass: delete expired background requests with what they left in their folder, expired stored
    files (not those a queued or running task reads), expired BlurIt outputs, what workers that died left
    in staging and what processes killed outright left in this host's scratch folder, and queue again (or
    fail) tasks whose worker stopped sending heartbeats, and background requests whose worker died."""
    now = utc_now()
    _delete_expired_requests(sessions, storage, now)  # before the files their results are
    files = _delete_expired_files(sessions, storage, now) + _delete_expired_uploads(sessions, storage, now)
    paths = _delete_expired_paths(sessions, settings.file_root_dir, now)
    requeued = _requeue_stale_tasks(sessions, queue, now - timedelta(seconds=settings.stale_task_s))
    requeued += _requeue_dead_requests(sessions, queue, now - timedelta(seconds=settings.task_time_limit_s))
    # After the tasks of dead workers left `started`, so a task failed for good loses its staging now.
    _delete_abandoned_staging(sessions, settings.staging_dir)
    _delete_stale_scratch(settings.scratch_dir, utc_now() - timedelta(seconds=settings.scratch_max_age_s))
    if files or paths or requeued:
        log.info("maintenance: %d files and %d paths expired, %d tasks queued again", files, paths, requeued)


def recover_tasks(sessions: sessionmaker[Session], queue: TaskQueue) -> int:
    """Sends every queued task and background request to the workers again, oldest first (at server
    start, when the broker may have lost messages); returns how many."""
    with sessions() as session:
        queued = session.execute(
            select(Task.id, Task.queue).where(Task.status == "queued").order_by(Task.created_at)
        ).all()
        requests = session.execute(
            select(BackgroundRequest.id, BackgroundRequest.queue)
            .where(BackgroundRequest.status == "queued")
            .order_by(BackgroundRequest.created_at)
        ).all()
    for task_id, task_queue in queued:
        queue.enqueue(task_id, task_queue)
    for request_id, request_queue in requests:
        queue.enqueue_request(request_id, request_queue)
    return len(queued) + len(requests)


def resend_lost_messages(sessions: sessionmaker[Session], queue: TaskQueue, settings: Settings) -> int:
    """Sends again the tasks, background requests and callbacks whose message the broker seems to have
    lost; returns how many.

    A queue that holds fewer messages than it has queued tasks and requests lost some (a worker's claim
    follows the message it takes within moments, and a task waiting on its input task has no message):
    those queued for longer than `settings.lost_message_s` are sent again, which a claim makes harmless
    for those whose message was not lost. A callback is sent again when its delivery should have been
    made or tried again by now.
    """
    waited_since = utc_now() - timedelta(seconds=settings.lost_message_s)
    resent = 0
    for name in TASK_QUEUES:
        task_ids, request_ids = _lost_in_queue(sessions, queue, name, waited_since)
        for task_id in task_ids:
            queue.enqueue(task_id, name)
        for request_id in request_ids:
            queue.enqueue_request(request_id, name)
        resent += len(task_ids) + len(request_ids)
    for task_id, attempt in _lost_callbacks(sessions, waited_since):
        queue.enqueue_callback(task_id, attempt=attempt)
        resent += 1
    if resent:
        log.warning("maintenance: %d messages the broker lost sent again", resent)
    return resent


def _lost_in_queue(
    sessions: sessionmaker[Session], queue: TaskQueue, name: str, waited_since: datetime
) -> tuple[list[str], list[str]]:
    """The ids of the tasks and of the requests queued in `name` before `waited_since`, when the queue
    holds fewer messages than tasks and requests wait in it; else none."""
    upstream = aliased(Task)
    input_task = Task.input["task"].as_string()
    has_message = or_(
        input_task.is_(None), input_task.in_(select(upstream.id).where(upstream.status.in_(FINAL_STATUSES)))
    )
    tasks = [Task.status == "queued", Task.queue == name, has_message]
    requests = [BackgroundRequest.status == "queued", BackgroundRequest.queue == name]
    with sessions() as session:
        expected = sum(
            session.scalar(select(func.count()).select_from(model).where(*where)) or 0
            for model, where in ((Task, tasks), (BackgroundRequest, requests))
        )
        if not expected or queue.messages_waiting(name) >= expected:
            return [], []
        task_ids = session.scalars(
            select(Task.id).where(*tasks, Task.updated_at < waited_since).order_by(Task.created_at)
        )
        request_ids = session.scalars(
            select(BackgroundRequest.id)
            .where(*requests, BackgroundRequest.updated_at < waited_since)
            .order_by(BackgroundRequest.created_at)
        )
        return list(task_ids), list(request_ids)


def _lost_callbacks(sessions: sessionmaker[Session], waited_since: datetime) -> list[tuple[str, int]]:
    """(task id, next attempt) of finished tasks whose callback was never tried, or is retrying and
    overdue by more than the longest delay between attempts, among the tasks finished in the last day."""
    delivery = Task.callback_delivery
    never_tried = and_(delivery.is_(None), Task.finished_at < waited_since)
    overdue = and_(
        delivery["state"].as_string() == "retrying",
        delivery["at"].as_string() < (waited_since - timedelta(seconds=MAX_RETRY_DELAY_S)).isoformat(),
    )
    query = select(Task.id, delivery).where(
        Task.callback_url.is_not(None),
        Task.status.in_(FINAL_STATUSES),
        Task.finished_at > utc_now() - timedelta(days=1),
        or_(never_tried, overdue),
    )
    with sessions() as session:
        return [(task_id, (record or {}).get("attempts", 0)) for task_id, record in session.execute(query)]


def _delete_expired_files(sessions: sessionmaker[Session], storage: Storage, now: datetime) -> int:
    active = Task.status.in_(_ACTIVE)
    read_files = Task.input["file"].as_string()
    read_tasks = Task.input["task"].as_string()
    # NOT IN over a NULL never matches, so the subqueries leave out tasks that have no such input.
    return _purge(
        sessions,
        StoredFile.id,
        [StoredFile.storage_key],
        [
            StoredFile.expires_at <= now,
            StoredFile.id.not_in(select(read_files).where(active, read_files.is_not(None))),
            or_(
                StoredFile.task_id.is_(None),
                StoredFile.task_id.not_in(select(read_tasks).where(active, read_tasks.is_not(None))),
            ),
        ],
        storage.delete,
    )


def _delete_expired_requests(sessions: sessionmaker[Session], storage: Storage, now: datetime) -> int:
    """Background requests past their expiry, and their folder: a request that never ran keeps its uploaded
    input there. Their result files expire as files do."""

    def remove(owner_id: str, request_id: str) -> None:
        storage.delete_tree(f"{owner_id}/{request_id}")

    locations = [BackgroundRequest.owner_id, BackgroundRequest.id]
    return _purge(sessions, BackgroundRequest.id, locations, [BackgroundRequest.expires_at <= now], remove)


def _requeue_dead_requests(sessions: sessionmaker[Session], queue: TaskQueue, dead_before: datetime) -> int:
    """Queues again the background requests still `started` that nothing touched since `dead_before`,
    the task time limit ago: by then the worker's hard limit would have ended a live run, so the
    worker died. Its results were never committed; the run starts over."""
    with session_scope(sessions) as session:
        dead = session.execute(
            update(BackgroundRequest)
            .where(BackgroundRequest.status == "started", BackgroundRequest.updated_at < dead_before)
            .values(status="queued", progress=0.0)
            .returning(BackgroundRequest.id, BackgroundRequest.queue)
        ).all()
    for request_id, request_queue in dead:
        queue.enqueue_request(request_id, request_queue)
    return len(dead)


def _delete_expired_uploads(sessions: sessionmaker[Session], storage: Storage, now: datetime) -> int:
    """Resumable uploads past their expiry: the row and any bytes still waiting (a finished upload's file
    expires on its own)."""
    return _purge(sessions, Upload.id, [Upload.storage_key], [Upload.expires_at <= now], storage.delete)


def _delete_expired_paths(sessions: sessionmaker[Session], file_root: Path, now: datetime) -> int:
    return _purge(
        sessions,
        ExpiringPath.id,
        [ExpiringPath.path, ExpiringPath.root],
        [ExpiringPath.expires_at <= now],
        partial(_remove_below, file_root),
    )


def _delete_abandoned_staging(sessions: sessionmaker[Session], staging_dir: Path) -> None:
    """Removes the staging folders (`<task id>-<attempt>`) of tasks no worker is running: a worker that
    died leaves its half-made outputs there, and a task failed for good never comes back to clear them.
    A worker claims its task before it makes the folder, so a folder listed here of a task not `started`
    is no worker's."""
    folders = _listed(staging_dir)
    if not folders:
        return
    task_ids = {folder.name.rpartition("-")[0] for folder in folders}
    with sessions() as session:
        running = set(session.scalars(select(Task.id).where(Task.id.in_(task_ids), Task.status == "started")))
    for folder in folders:
        if folder.name.rpartition("-")[0] not in running:
            shutil.rmtree(folder, ignore_errors=True)


def _delete_stale_scratch(scratch_dir: Path, stale_before: datetime) -> None:
    """Deletes the files in this host's scratch folder last written before `stale_before`, and folders
    left empty there. A file on its way to or from S3 is written until it is moved and removed, so only a
    process killed outright (an API process in the middle of an upload) leaves one untouched for long.
    An empty folder goes only once stale, or emptied now: a writer makes its folder just before its file."""
    cutoff, root = stale_before.timestamp(), str(scratch_dir)
    gone: set[str] = set()
    files = 0
    for folder, subfolders, names in os.walk(root, topdown=False):
        for path in (os.path.join(folder, name) for name in names):
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime < cutoff:
                    os.unlink(path)
                    gone.add(path)
                    files += 1
        emptied = any(os.path.join(folder, name) in gone for name in [*subfolders, *names])
        with contextlib.suppress(OSError):  # rmdir refuses a folder that is not empty
            if folder != root and (emptied or os.stat(folder).st_mtime < cutoff):
                os.rmdir(folder)
                gone.add(folder)
    if files:
        log.warning("maintenance: %d files left in %s by a process killed outright deleted", files, root)


def _listed(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _purge(
    sessions: sessionmaker[Session],
    row_id: InstrumentedAttribute[Any],
    locations: Sequence[InstrumentedAttribute[Any]],
    where: Sequence[ColumnElement[bool]],
    remove: Callable[..., None],
) -> int:
    """Deletes the rows matching `where` and what each names in its `locations` columns
    (`remove(*values)`), a batch per transaction. Bytes go first: expired rows are already hidden from
    clients, and deleting twice is harmless. Returns how many rows went."""
    query = select(row_id, *locations).where(*where).order_by(row_id).limit(_BATCH)
    deleted = 0
    while True:
        with sessions() as session:
            rows = session.execute(query).all()
        for _, *names in rows:
            _forget(remove, *names)
        with session_scope(sessions) as session:
            session.execute(delete(row_id.class_).where(row_id.in_([ident for ident, *_ in rows])))
        deleted += len(rows)
        if len(rows) < _BATCH:
            return deleted


def _remove_below(file_root: Path, relative: str, root: str | None) -> None:
    """Deletes an expired output below the root its task's key had (rows older than per-key roots: the
    file root), never through a symbolic link; a link itself goes, never what it points at."""
    try:
        FileRoot(file_root if root is None else Path(root)).delete(relative)
    except PathOutsideRootError as exc:
        log.warning("expired output %r left alone: %s", relative, exc)


def _forget(remove: Callable[..., None], *names: Any) -> None:
    """Runs `remove(*names)`; a failure is logged and the row is dropped anyway, so one bad path cannot
    stall the clean-up of everything behind it."""
    try:
        remove(*names)
    except OSError:
        log.warning("could not delete expired %s", names[0], exc_info=True)


def _requeue_stale_tasks(sessions: sessionmaker[Session], queue: TaskQueue, stale_before: datetime) -> int:
    stale = and_(Task.status == "started", or_(Task.heartbeat_at.is_(None), Task.heartbeat_at < stale_before))
    now = utc_now()
    lost = {
        "title": "Worker lost",
        "detail": f"the worker running this task stopped without finishing it {MAX_ATTEMPTS} times; "
        "it is not tried again",
    }
    with session_scope(sessions) as session:
        requeued = [
            Queued(*row)
            for row in session.execute(
                update(Task)
                .where(stale, Task.attempts < MAX_ATTEMPTS)
                .values(status="queued", heartbeat_at=None, started_at=None, progress=0.0, updated_at=now)
                .returning(Task.id, Task.queue)
                .execution_options(synchronize_session=False)
            )
        ]
        failed = session.execute(
            update(Task)
            .where(stale, Task.attempts >= MAX_ATTEMPTS)
            .values(status="failed", error=lost, finished_at=now, updated_at=now)
            .returning(Task.id, Task.callback_url)
            .execution_options(synchronize_session=False)
        ).all()
        # Tasks chained on a failed one are woken, to fail in turn with a reason of their own.
        waiting = [waiting for task_id, _ in failed for waiting in tasks_waiting_on(session, task_id=task_id)]
    for task in [*requeued, *waiting]:
        queue.enqueue(*task)
    for task_id, callback_url in failed:
        log.warning("task %s failed: its worker stopped %d times", task_id, MAX_ATTEMPTS)
        if callback_url:
            queue.enqueue_callback(task_id)
    return len(requeued)
