"""One segment of a long video, run by whichever worker takes it (`veil.worker.segments` has the whole).

A run claims the segment's row, runs the pipeline on the segment's frames of the task's input, stores the
segment's video and report under a key of its own attempt, and records how it ended: completed with those
keys, failed with {title, detail} as a task would, or nothing when stopped. As for tasks, every write after
the claim is conditional on this attempt still holding the segment, and a segment is held only while its
task is `started`: cancelling the task stops every segment at its next heartbeat.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, and_, exists, or_, update
from sqlalchemy.orm import Session

from veil.core.database.connection import session_scope
from veil.core.database.models import Task, VideoSegment, utc_now
from veil.core.services.maintenance import MAX_ATTEMPTS
from veil.core.storage import Storage
from veil.engine.report import Report
from veil.engine.video import FrameRange
from veil.worker.context import WorkerContext
from veil.worker.failures import describe_failure
from veil.worker.lifecycle import Heartbeat, TaskStopped
from veil.worker.processors import file_processor

__all__ = [
    "SegmentClaim",
    "claim_segment",
    "fail_lost_segments",
    "frames_to_row",
    "read_report",
    "run_claimed",
    "run_segment",
    "segments_prefix",
]

log = logging.getLogger(__name__)

SegmentProgress = Callable[[float], None]
"""Called with the fraction (0..1) of its frames a segment has looked at."""


@dataclass(frozen=True)
class SegmentClaim:
    """A segment this attempt holds, as read when it was claimed."""

    task_id: str
    index: int
    attempt: int
    frames: FrameRange
    input_key: str
    input_suffix: str
    owner_id: str
    operation: str
    parameters: dict[str, Any]

    @property
    def name(self) -> str:
        """Where this attempt stores its outputs: `<name><input suffix>` and `<name>.json`."""
        return f"{segments_prefix(self.owner_id, self.task_id)}/{self.index}-{self.attempt}"


def segments_prefix(owner_id: str, task_id: str) -> str:
    """The storage folder of a task's segment outputs; beside the task's own outputs, so that a new
    attempt of the task, which deletes those, keeps the segments already done."""
    return f"{owner_id}/{task_id}.segments"


def frames_to_row(frames: FrameRange) -> dict[str, Any]:
    return asdict(frames)


def run_segment(context: WorkerContext, task_id: str, index: int) -> None:
    """Runs the segment if this call claims it (the `RUN_SEGMENT` message); does nothing when it is done,
    running elsewhere, or its task is no longer `started`."""
    claim = claim_segment(context, task_id, index)
    if claim is None:
        log.info("segment %d of task %s is done, running elsewhere or stopped", index, task_id)
        return
    run_claimed(context, claim)


def claim_segment(context: WorkerContext, task_id: str, index: int) -> SegmentClaim | None:
    """Takes the segment for this attempt if it is queued, or started by a worker whose heartbeat is stale
    (fewer than `MAX_ATTEMPTS` times), and its task is `started`; None otherwise."""
    now = utc_now()
    claimable = or_(
        VideoSegment.status == "queued",
        and_(VideoSegment.status == "started", VideoSegment.attempts < MAX_ATTEMPTS, _stale(context)),
    )
    with session_scope(context.sessions) as session:
        claimed = _updated(
            session,
            update(VideoSegment)
            .where(VideoSegment.task_id == task_id, VideoSegment.index == index, claimable, _task_started())
            .values(status="started", attempts=VideoSegment.attempts + 1, heartbeat_at=now, progress=0.0)
            .values(worker=f"{socket.gethostname()}:{os.getpid()}", error=None, updated_at=now),
        )
        if not claimed:
            return None
        row = session.get_one(VideoSegment, (task_id, index), populate_existing=True)
        task = session.get_one(Task, task_id)
        return SegmentClaim(
            task_id=task_id,
            index=index,
            attempt=row.attempts,
            frames=FrameRange(**row.frames),
            input_key=row.input_key,
            input_suffix=row.input_suffix,
            owner_id=task.owner_id,
            operation=task.operation,
            parameters=dict(task.parameters),
        )


def fail_lost_segments(context: WorkerContext, task_id: str) -> None:
    """Fails the task's segments whose worker stopped (stale heartbeat) `MAX_ATTEMPTS` times: the
    segment may be what kills the worker."""
    lost = {
        "title": "Worker lost",
        "detail": f"the worker running one segment of this video stopped without finishing it {MAX_ATTEMPTS} "
        "times; it is not tried again",
    }
    with session_scope(context.sessions) as session:
        session.execute(
            update(VideoSegment)
            .where(VideoSegment.task_id == task_id, VideoSegment.status == "started")
            .where(VideoSegment.attempts >= MAX_ATTEMPTS, _stale(context))
            .values(status="failed", error=lost, updated_at=utc_now())
        )


def run_claimed(context: WorkerContext, claim: SegmentClaim, progress: SegmentProgress | None = None) -> None:
    """Runs a claimed segment and records how it ended (see the module docstring); `progress`, if given,
    may stop it by raising `TaskStopped`."""
    name = f"segment {claim.index} of task {claim.task_id}"
    heartbeat = Heartbeat(context, name, lambda session, fraction: _beat(session, claim, fraction))
    try:
        with heartbeat.running():
            media_key, report_key = _process(context, claim, heartbeat, progress)
    except TaskStopped:
        log.info("%s: attempt %d stopped", name, claim.attempt)
        return
    except Exception as exc:
        _end(context, claim, status="failed", error=describe_failure(exc, context.settings))
        log.info("%s: attempt %d failed", name, claim.attempt)
        return
    if not _end(context, claim, status="completed", progress=1.0, media_key=media_key, report_key=report_key):
        for key in (media_key, report_key):
            if key is not None:
                context.storage.delete(key)
    log.info("%s: attempt %d ended", name, claim.attempt)


def read_report(storage: Storage, key: str) -> Report:
    """A segment's report, as its run stored it."""
    with storage.open(key) as stored:
        return Report.from_dict(json.load(stored))


def _process(
    context: WorkerContext, claim: SegmentClaim, heartbeat: Heartbeat, progress: SegmentProgress | None
) -> tuple[str | None, str]:
    """Runs the pipeline on the segment; returns the keys of its stored video (None when only detecting)
    and report."""
    write_media, processor = file_processor(context, claim.operation, claim.parameters, claim.owner_id)
    storage = context.storage
    media_key = f"{claim.name}{claim.input_suffix}" if write_media else None

    def advance(done: int, total: int | None) -> None:
        fraction = done / total if total else 0.0
        heartbeat.progress(fraction)
        if progress is not None:
            progress(fraction)

    with _engine_input(context, claim) as source:
        staged = None if media_key is None else storage.staging_path(media_key)
        report = processor.process_file(source, staged, advance, claim.frames)
    heartbeat.check()
    report_key = f"{claim.name}.json"
    staged_report = storage.staging_path(report_key)
    staged_report.write_text(report.to_json(), encoding="utf-8")
    storage.commit(staged_report, report_key)
    if media_key is not None:
        storage.commit(storage.staging_path(media_key), media_key)
    return media_key, report_key


@contextmanager
def _engine_input(context: WorkerContext, claim: SegmentClaim) -> Iterator[Path]:
    """The task's input as a local file named with the suffix the engine reads it by, for the block's
    duration; a copy in a folder of the worker's own (see `Storage.local_copy`), gone after."""
    base = context.settings.staging_dir
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Named `<task id>-...`: maintenance removes it once the task no longer runs, should this worker die.
    with (
        tempfile.TemporaryDirectory(prefix=f"{claim.task_id}-", dir=base) as folder,
        context.storage.local_copy(claim.input_key, Path(folder)) as stored,
    ):
        if stored.suffix.lower() == claim.input_suffix.lower():
            yield stored
            return
        link = Path(folder) / f"input{claim.input_suffix}"
        os.symlink(stored, link)
        yield link


def _beat(session: Session, claim: SegmentClaim, fraction: float) -> bool:
    return _updated(session, _held(claim).values(heartbeat_at=utc_now(), progress=fraction))


def _end(context: WorkerContext, claim: SegmentClaim, **values: Any) -> bool:
    """Records the end of this attempt; False when it no longer held the segment."""
    with session_scope(context.sessions) as session:
        return _updated(session, _held(claim).values(**values, heartbeat_at=None, updated_at=utc_now()))


def _held(claim: SegmentClaim) -> Any:
    """An UPDATE of the segment that matches only while this attempt holds it and its task runs."""
    return update(VideoSegment).where(
        VideoSegment.task_id == claim.task_id,
        VideoSegment.index == claim.index,
        VideoSegment.status == "started",
        VideoSegment.attempts == claim.attempt,
        _task_started(),
    )


def _task_started() -> Any:
    return exists().where(Task.id == VideoSegment.task_id, Task.status == "started")


def _stale(context: WorkerContext) -> Any:
    stale_before = utc_now() - timedelta(seconds=context.settings.stale_task_s)
    return or_(VideoSegment.heartbeat_at.is_(None), VideoSegment.heartbeat_at < stale_before)


def _updated(session: Session, statement: Any) -> bool:
    """Runs a single-row UPDATE; True when it matched the row."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount == 1
