"""A task's life in the database as one worker attempt sees it: claim, keep alive, release, finish, fail.

Every write after the claim is conditional on the task still being `started` by this attempt (same
`attempts` number), so an attempt whose task was cancelled, or handed to another worker after its
heartbeat went stale, changes nothing and stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, ExpiringPath, StoredFile, Task, utc_now
from veil.core.services.maintenance import MAX_ATTEMPTS
from veil.worker.context import WorkerContext

__all__ = [
    "Beat",
    "Claim",
    "Finished",
    "Heartbeat",
    "InputNotReadyError",
    "TaskFailure",
    "TaskStopped",
    "Ticker",
    "Usage",
    "claim_task",
    "complete_task",
    "fail_task",
    "release_task",
]

log = logging.getLogger(__name__)

# The background beat wakes at least this rarely, also when tests ask for a beat on every progress call.
_MIN_BEAT_PERIOD_S = 0.05


class TaskStopped(Exception):
    """The task was cancelled, or handed to another worker, while this attempt ran it."""


class InputNotReadyError(Exception):
    """The input is the output of another task that has not finished yet; it wakes this one when it ends."""

    def __init__(self, task_id: str, input_task_id: str) -> None:
        super().__init__(f"task {task_id} waits for task {input_task_id}")
        self.input_task_id = input_task_id


class TaskFailure(Exception):
    """The task cannot be done for a reason the client should read: `title` and one-line `detail`."""

    def __init__(self, title: str, detail: str) -> None:
        super().__init__(detail)
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class Claim:
    """A task this attempt holds, as read when it was claimed."""

    task_id: str
    owner_id: str
    api: str
    operation: str
    parameters: dict[str, Any]
    input: dict[str, Any]
    callback_url: str | None
    attempt: int
    queue: str


@dataclass(frozen=True)
class Usage:
    """What a task processed, added to its key's counters; `frames` counts video frames only."""

    files: int = 0
    bytes: int = 0
    frames: int = 0


@dataclass
class Finished:
    """What a run produced, recorded together with the completed status.

    Attributes:
        after_commit: done once the completion is committed (e.g. deleting an input).
        discard: removes the outputs when the completion is refused because the task was stopped.
    """

    result: dict[str, Any]
    usage: Usage
    files: list[StoredFile] = field(default_factory=list)
    expiring: list[ExpiringPath] = field(default_factory=list)
    after_commit: Callable[[], None] = lambda: None
    discard: Callable[[], None] = lambda: None


def claim_task(context: WorkerContext, task_id: str) -> Claim | None:
    """Takes the task for this attempt if it is queued, or started by a worker whose heartbeat is stale;
    None when it is anyone else's or already finished (so a duplicate message does nothing)."""
    now = utc_now()
    stale_before = now - timedelta(seconds=context.settings.stale_task_s)
    claimable = or_(
        Task.status == "queued",
        and_(
            Task.status == "started",
            Task.attempts < MAX_ATTEMPTS,
            or_(Task.heartbeat_at.is_(None), Task.heartbeat_at < stale_before),
        ),
    )
    with session_scope(context.sessions) as session:
        claimed = _execute(
            session,
            update(Task)
            .where(Task.id == task_id, claimable)
            .values(status="started", attempts=Task.attempts + 1, heartbeat_at=now, started_at=now)
            .values(progress=0.0, error=None, updated_at=now),
        )
        if not claimed:
            return None
        task = session.get_one(Task, task_id, populate_existing=True)
        return Claim(
            task_id=task.id,
            owner_id=task.owner_id,
            api=task.api,
            operation=task.operation,
            parameters=dict(task.parameters),
            input=dict(task.input),
            callback_url=task.callback_url,
            attempt=task.attempts,
            queue=task.queue,
        )


def release_task(context: WorkerContext, claim: Claim) -> None:
    """Puts the task back in the queue without counting this attempt."""
    with session_scope(context.sessions) as session:
        _execute(
            session,
            _held(claim).values(
                status="queued", attempts=Task.attempts - 1, heartbeat_at=None, started_at=None
            ),
        )


def complete_task(context: WorkerContext, claim: Claim, finished: Finished) -> bool:
    """Records the result, generated files, expiring outputs and usage in one transaction; False (and the
    outputs discarded) when the task was stopped meanwhile."""
    now = utc_now()
    with session_scope(context.sessions) as session:
        completed = _execute(
            session,
            _held(claim).values(
                status="completed", progress=1.0, result=finished.result, finished_at=now, updated_at=now
            ),
        )
        if completed:
            session.add_all([*finished.files, *finished.expiring])
            usage = finished.usage
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == claim.owner_id)
                .values(
                    files_processed=ApiKey.files_processed + usage.files,
                    bytes_processed=ApiKey.bytes_processed + usage.bytes,
                    frames_processed=ApiKey.frames_processed + usage.frames,
                )
            )
    if not completed:
        finished.discard()
        return False
    finished.after_commit()
    return True


def fail_task(context: WorkerContext, claim: Claim, error: dict[str, str]) -> bool:
    """Records the failure; False when the task was stopped meanwhile."""
    now = utc_now()
    with session_scope(context.sessions) as session:
        return _execute(
            session, _held(claim).values(status="failed", error=error, finished_at=now, updated_at=now)
        )


def _held(claim: Claim) -> Any:
    """An UPDATE of the task that matches only while this attempt holds it."""
    return update(Task).where(
        Task.id == claim.task_id, Task.status == "started", Task.attempts == claim.attempt
    )


def _execute(session: Session, statement: Any) -> bool:
    """Runs a single-row UPDATE; True when it matched the row."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount == 1


Beat = Callable[[Session, float], bool]
"""Records one heartbeat with the progress fraction (0..1); False when the work is no longer held."""


class Heartbeat:
    """Keeps a running piece of work's claim alive and tells it when to stop.

    The engine reports progress through `progress(fraction)`; a background thread beats as well, so a
    long photo or model load without progress calls does not look like a dead worker. Either writes at
    most once per `context.beat_interval_s`; when the write finds the work no longer held, the next
    `progress` call raises `TaskStopped`.
    """

    def __init__(self, context: WorkerContext, name: str, beat: Beat) -> None:
        self._context = context
        self._name = name
        self._record = beat
        self._interval_s = context.beat_interval_s
        self._fraction = 0.0
        self._last_beat = time.monotonic()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._done = threading.Event()

    def progress(self, fraction: float) -> None:
        """Records progress (0..1).

        Raises:
            TaskStopped: the work was cancelled or taken over; stop without outputs.
        """
        self._fraction = min(max(fraction, 0.0), 1.0)
        if time.monotonic() - self._last_beat >= self._interval_s:
            self._beat()
        self.check()

    def check(self) -> None:
        """Raises `TaskStopped` if a beat found the work no longer held by this attempt."""
        if self._stopped.is_set():
            raise TaskStopped(self._name)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Beats in a background thread for the duration of the block."""
        thread = threading.Thread(target=self._loop, name=f"veil-beat-{self._name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._done.set()
            thread.join()

    def _loop(self) -> None:
        while not self._done.wait(max(self._interval_s, _MIN_BEAT_PERIOD_S)):
            if time.monotonic() - self._last_beat >= self._interval_s:
                self._beat()

    def _beat(self) -> None:
        with self._lock:
            self._last_beat = time.monotonic()
            try:
                with session_scope(self._context.sessions) as session:
                    held = self._record(session, self._fraction)
            except SQLAlchemyError:
                # A busy database must not fail the work; the next beat tries again.
                log.warning("%s: could not record progress", self._name, exc_info=True)
                return
        if not held:
            self._stopped.set()


class Ticker(Heartbeat):
    """A task attempt's heartbeat: `heartbeat_at` and `progress` of the task, while this attempt holds it."""

    def __init__(self, context: WorkerContext, claim: Claim) -> None:
        def beat(session: Session, fraction: float) -> bool:
            return _execute(session, _held(claim).values(heartbeat_at=utc_now(), progress=fraction))

        super().__init__(context, claim.task_id, beat)
