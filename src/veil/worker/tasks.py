"""`run_task`: claim a task, run it with the engine, and record how it ended, exactly once.

A message may arrive twice (redelivery, requeue after a stale heartbeat, recovery at start); only the
call that claims the task runs it. A run ends in one of three ways: completed with its outputs, failed
with `error` = {title, detail} for the client, or stopped without outputs because the task was cancelled
or handed to another worker. Completion and failure then send the task's callback, if it has one.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select

from veil.core.db import session_scope
from veil.core.models import FINAL_STATUSES, ApiKey, Task
from veil.core.paths import PathOutsideRootError
from veil.core.settings import Settings
from veil.core.tasks import tasks_waiting_on
from veil.engine.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    ModelError,
    OutputError,
    SizeMismatchError,
    UnsupportedMediaError,
    VeilError,
)
from veil.worker.blurit import run_blurit_task
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import (
    Claim,
    Finished,
    InputNotReadyError,
    TaskFailure,
    TaskStopped,
    Ticker,
    claim_task,
    complete_task,
    fail_task,
    release_task,
)
from veil.worker.options import InvalidParametersError
from veil.worker.v1 import run_v1_task

__all__ = ["run_task"]

log = logging.getLogger(__name__)

Runner = Callable[[WorkerContext, Claim, Ticker], Finished]
_RUNNERS: dict[str, Runner] = {"v1": run_v1_task, "blurit": run_blurit_task}

# Most specific first: the first match names the failure.
_TITLES: tuple[tuple[type[Exception], str], ...] = (
    (UnsupportedMediaError, "Unsupported media"),
    (CorruptMediaError, "Corrupt media"),
    (MediaTooLargeError, "Media too large"),
    (MediaError, "Unreadable media"),
    (OutputError, "Output not written"),
    (ModelError, "Detector failed"),
    (SizeMismatchError, "Detections do not match the input"),
    (VeilError, "Processing failed"),
    (InvalidParametersError, "Invalid parameters"),
    (PathOutsideRootError, "Path outside the file root"),
)


def run_task(context: WorkerContext, task_id: str) -> None:
    """Runs the task if this call claims it; does nothing when it is running elsewhere or finished.

    A task whose input task has not finished goes back to the queue with no message: the input's end
    enqueues it (`tasks_waiting_on`), so no retry is held in a worker's memory, where a kill would lose it.
    """
    claim = claim_task(context, task_id)
    if claim is None:
        log.info("task %s is running elsewhere, finished or cancelled; nothing to do", task_id)
        return
    log.info("task %s: attempt %d started", task_id, claim.attempt)
    ticker = Ticker(context, claim)
    try:
        with ticker.running():
            _require_live_key(context, claim)
            finished = _runner(claim)(context, claim, ticker)
    except InputNotReadyError as waiting:
        release_task(context, claim)
        _enqueue_if_input_ended(context, claim, waiting.input_task_id)
        return
    except TaskStopped:
        log.info("task %s: attempt %d stopped (cancelled or taken over)", task_id, claim.attempt)
        return
    except Exception as exc:
        ended = fail_task(context, claim, _failure(exc, context.settings))
    else:
        ended = complete_task(context, claim, finished)
    log.info("task %s: attempt %d %s", task_id, claim.attempt, "ended" if ended else "was stopped")
    if not ended:
        return
    if claim.callback_url:
        context.queue.enqueue_callback(task_id)
    with session_scope(context.sessions) as session:
        waiting_ids = tasks_waiting_on(session, task_id=task_id)
    for waiting_task in waiting_ids:
        context.queue.enqueue(*waiting_task)


def _enqueue_if_input_ended(context: WorkerContext, claim: Claim, input_task_id: str) -> None:
    """Closes the race where the input ended between the check and the release: its end found this task
    still started and did not wake it, so wake it now."""
    with session_scope(context.sessions) as session:
        status = session.scalar(select(Task.status).where(Task.id == input_task_id))
    if status in FINAL_STATUSES:
        context.queue.enqueue(claim.task_id, claim.queue)


def _require_live_key(context: WorkerContext, claim: Claim) -> None:
    """Refuses to run a task whose key was revoked after it was submitted: revoking a key stops what it
    queued too (reading, writing and deleting below its root, callbacks with results).

    Raises:
        TaskFailure: the key is revoked.
    """
    with context.sessions() as session:
        revoked_at = session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == claim.owner_id))
    if revoked_at is not None:
        raise TaskFailure("Key revoked", "the key that submitted this task was revoked before it ran")


def _runner(claim: Claim) -> Runner:
    runner = _RUNNERS.get(claim.api)
    if runner is None:
        raise TaskFailure("Unknown task kind", f"this worker does not run {claim.api!r} tasks")
    return runner


def _failure(exc: Exception, settings: Settings) -> dict[str, str]:
    """{title, detail} for the client: the engine's one-line message for media and output problems, a
    plain sentence for a full disk or a time limit, and a generic one (with the traceback logged) for
    anything unexpected."""
    if _disk_full(exc):
        return {
            "title": "Disk full",
            "detail": "the disk is full, so the output could not be written; free space and submit again",
        }
    if isinstance(exc, TaskFailure):
        return {"title": exc.title, "detail": exc.detail}
    if isinstance(exc, SoftTimeLimitExceeded):
        return {
            "title": "Time limit exceeded",
            "detail": f"the task ran longer than the limit of {settings.task_time_limit_s} s",
        }
    for kind, title in _TITLES:
        if isinstance(exc, kind):
            return {"title": title, "detail": _one_line(str(exc), settings)}
    log.error("task failed unexpectedly", exc_info=exc)
    return {"title": "Internal error", "detail": "the worker failed unexpectedly; its log has the details"}


def _disk_full(exc: BaseException) -> bool:
    """True when `exc` or an error it was raised from is ENOSPC (the engine wraps OS errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _one_line(message: str, settings: Settings) -> str:
    """The first line of an engine message, without the server's own directories."""
    for root in (settings.storage_dir, settings.file_root_dir):
        message = message.replace(f"{root}/", "")
    return message.splitlines()[0] if message else "no details"
