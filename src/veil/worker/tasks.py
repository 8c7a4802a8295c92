"""`run_task`: claim a task, run it with the engine, and record how it ended, exactly once.

A message may arrive twice (redelivery, requeue after a stale heartbeat, recovery at start); only the
call that claims the task runs it. A run ends in one of three ways: completed with its outputs, failed
with `error` = {title, detail} for the client, or stopped without outputs because the task was cancelled
or handed to another worker. Completion and failure then send the task's callback, if it has one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from veil.core.database.connection import session_scope
from veil.core.database.models import FINAL_STATUSES, ApiKey, Task
from veil.core.services.tasks import tasks_waiting_on
from veil.worker.blurit import run_blurit_task
from veil.worker.context import WorkerContext
from veil.worker.failures import describe_failure
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
from veil.worker.v1 import run_v1_task

__all__ = ["run_task"]

log = logging.getLogger(__name__)

Runner = Callable[[WorkerContext, Claim, Ticker], Finished]
_RUNNERS: dict[str, Runner] = {"v1": run_v1_task, "blurit": run_blurit_task}


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
        ended = fail_task(context, claim, describe_failure(exc, context.settings))
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
