"""One long video over several workers: the task's own attempt cuts it into segments, every worker helps.

A `/v1` anonymize, detect or render task on a video of at least `split_min_s` seconds is cut at key frames
into segments of at least `segment_min_s` (`veil.engine.segments`). The attempt that claimed the task
records one `VideoSegment` row per segment and sends a Celery group of `RUN_SEGMENT` messages to the task's
queue, one per segment, for any worker to take (`veil.worker.segment_runs`). It works on segments itself
too, taking the next unclaimed one from the database, so one worker process alone still gets through a
video; once none is left to take it waits for the others, then joins their outputs into the task's own,
which the task then stores as it would a single run's.

The join is triggered through the database, not by a chord: a chord's callback needs a result backend,
which the embedded broker lacks, and the join must run in the attempt that holds the task anyway. The
database says which segments are done, so the attempt needs nothing back from the broker, and a segment
counts once however often its message arrives (or if it never does: the attempt then runs it itself).

While segments run, the task's attempt keeps its claim, and its progress is the segments' progress summed
over their frames. Cancelling the task stops every segment at its next heartbeat, and the attempt marks
those not finished `cancelled`. A worker killed during a segment leaves that segment's heartbeat to go
stale; the attempt (or a duplicate message) runs that segment again, and only that one. A task attempt
killed leaves the finished segments in the database and in storage, and the task's next attempt reuses
them.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import exists, not_, select, update

from veil.core.database.connection import session_scope
from veil.core.database.models import FINAL_STATUSES, StoredFile, Task, VideoSegment, utc_now
from veil.core.services.tasks import find_output_media
from veil.engine.anonymizer import Progress
from veil.engine.media.kinds import media_kind
from veil.engine.report import Report
from veil.engine.segments import join_segments, plan_segments
from veil.engine.video import FrameRange, VideoOptions
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import Claim, TaskFailure
from veil.worker.processors import FileProcessor
from veil.worker.segment_runs import (
    claim_segment,
    fail_lost_segments,
    frames_to_row,
    read_report,
    run_claimed,
    segments_prefix,
)

__all__ = ["split_long_videos"]

log = logging.getLogger(__name__)

_SPLIT_OPERATIONS = frozenset({"anonymize", "detect", "render"})
_WAIT_S = 0.5  # how often a task waiting for other workers' segments looks at them again


def split_long_videos(context: WorkerContext, claim: Claim, processor: FileProcessor) -> FileProcessor:
    """What runs `claim`'s operation: for a `/v1` anonymize, detect or render task, `processor` cutting a
    long enough video into segments for every worker (see the module docstring); else `processor`.

    A render is cut where an anonymize task on the same video is, so its parts are encoded alike and the
    render of an anonymize task's own detections gives back its video."""
    if claim.api != "v1" or claim.operation not in _SPLIT_OPERATIONS or not context.settings.split_min_s:
        return processor
    return _Splitting(processor, context, claim)


class _Splitting:
    def __init__(self, base: FileProcessor, context: WorkerContext, claim: Claim) -> None:
        self._base, self._context, self._claim = base, context, claim

    def process_file(
        self,
        source: Path,
        output: Path | None,
        progress: Progress | None = None,
        frames: FrameRange | None = None,
    ) -> Report:
        if frames is None and media_kind(source) == "video":
            settings = self._context.settings
            options = self.video_options()
            segments = plan_segments(source, settings.segment_min_s, options, settings.split_min_s)
            if segments:
                run = _SplitRun(
                    self._context, self._claim, segments, progress or (lambda _done, _total: None)
                )
                return run.execute(source, output, options.keep_audio)
        return self._base.process_file(source, output, progress, frames)

    def video_options(self) -> VideoOptions:
        return self._base.video_options()


class _SplitRun:
    """The task attempt's part: record the segments, send them, help, wait, join."""

    def __init__(
        self, context: WorkerContext, claim: Claim, segments: tuple[FrameRange, ...], progress: Progress
    ) -> None:
        self.context, self.claim, self.segments, self.progress = context, claim, segments, progress
        self.written = [segment.write_stop - segment.write_start for segment in segments]
        self.prefix = segments_prefix(claim.owner_id, claim.task_id)

    def execute(self, source: Path, output: Path | None, keep_audio: bool) -> Report:
        """Returns the report of the whole video, joined into `output`.

        Raises:
            TaskStopped: the task was cancelled or taken over.
            TaskFailure: a segment failed (its title and detail) or the input is gone.
            VeilError: the segments cannot be joined.
        """
        waiting = self._record(source.suffix)
        log.info("task %s: %d segments, %d to run", self.claim.task_id, len(self.segments), len(waiting))
        self.context.queue.enqueue_segments(self.claim.task_id, waiting, self.claim.queue)
        try:
            self._work_until_done()
            return self._join(source, output, keep_audio)
        except BaseException:
            self._stop_segments()
            raise
        finally:
            if self._still_ours():  # a newer attempt of the task may be using the segments done
                self.context.storage.delete_tree(self.prefix)

    def _record(self, input_suffix: str) -> list[int]:
        """Makes the segment rows, or keeps those an earlier attempt made for the same plan (a finished
        one still counts if its outputs are there); returns the indices no worker has taken yet."""
        input_key = self._input_key()
        planned = [frames_to_row(segment) for segment in self.segments]
        task_id = self.claim.task_id
        with session_scope(self.context.sessions) as session:
            rows = list(session.scalars(select(VideoSegment).where(VideoSegment.task_id == task_id)))
            rows.sort(key=lambda row: row.index)
            if [row.frames for row in rows] != planned or any(row.input_key != input_key for row in rows):
                for row in rows:  # another plan (the settings changed): start again
                    session.delete(row)
                session.flush()
                rows = [
                    VideoSegment(
                        task_id=task_id,
                        index=index,
                        frames=frames,
                        input_key=input_key,
                        input_suffix=input_suffix,
                        status="queued",
                        progress=0.0,
                    )
                    for index, frames in enumerate(planned)
                ]
                session.add_all(rows)
            for row in rows:
                if row.status in ("failed", "cancelled") or (
                    row.status == "completed" and not self._kept(row)
                ):
                    row.status, row.error, row.progress = "queued", None, 0.0
            session.flush()
            return [row.index for row in rows if row.status == "queued"]

    def _kept(self, row: VideoSegment) -> bool:
        keys = [key for key in (row.media_key, row.report_key) if key is not None]
        return all(self.context.storage.exists(key) for key in keys)

    def _input_key(self) -> str:
        """Where the task's input lives in storage, for the workers that read their segment there."""
        with self.context.sessions() as session:
            if "task" in self.claim.input:
                found = find_output_media(session, task_id=str(self.claim.input["task"]))
            else:
                found = session.get(StoredFile, str(self.claim.input.get("file")))
        if found is None or found.owner_id != self.claim.owner_id:
            raise TaskFailure("Input not found", "the input was deleted while the task ran")
        return found.storage_key

    def _work_until_done(self) -> None:
        """Runs segments no one runs, else waits, until every segment has completed.

        Raises:
            TaskStopped: the task was cancelled or taken over (from `progress`).
            TaskFailure: a segment failed.
        """
        while True:
            fail_lost_segments(self.context, self.claim.task_id)
            rows = self._rows()
            done = sum(row.progress * written for row, written in zip(rows, self.written, strict=True))
            self.progress(round(done), sum(self.written))
            failed = next((row for row in rows if row.status == "failed"), None)
            if failed is not None:
                error = failed.error or {}
                raise TaskFailure(str(error.get("title")), str(error.get("detail")))
            if all(row.status == "completed" for row in rows):
                return
            if not self._run_one(rows, done):
                time.sleep(_WAIT_S)

    def _run_one(self, rows: list[VideoSegment], done: float) -> bool:
        """Claims and runs the first segment that is queued, or whose worker stopped beating; False when
        there is none."""
        for row in rows:
            if row.status not in ("queued", "started"):
                continue
            claim = claim_segment(self.context, self.claim.task_id, row.index)
            if claim is not None:
                rest = done - row.progress * self.written[row.index]
                run_claimed(self.context, claim, self._segment_progress(rest, self.written[row.index]))
                return True
        return False

    def _segment_progress(self, rest: float, frames: int) -> Callable[[float], None]:
        total = sum(self.written)
        return lambda fraction: self.progress(round(rest + fraction * frames), total)

    def _rows(self) -> list[VideoSegment]:
        with self.context.sessions() as session:
            query = select(VideoSegment).where(VideoSegment.task_id == self.claim.task_id)
            return sorted(session.scalars(query), key=lambda row: row.index)

    def _join(self, source: Path, output: Path | None, keep_audio: bool) -> Report:
        rows = self._rows()
        storage = self.context.storage
        reports = [read_report(storage, str(row.report_key)) for row in rows]
        staging = self.context.settings.staging_dir
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(prefix=f"{self.claim.task_id}-", dir=staging) as folder,
            ExitStack() as parts,
        ):
            media = [] if output is None else [str(row.media_key) for row in rows]
            paths = [parts.enter_context(storage.local_copy(key, Path(folder))) for key in media]
            return join_segments(source, output, self.segments, paths, reports, keep_audio)

    def _still_ours(self) -> bool:
        """False when another attempt has taken the task over (it runs and uses the segments now)."""
        with self.context.sessions() as session:
            task = session.get_one(Task, self.claim.task_id, populate_existing=True)
            return task.status != "started" or task.attempts == self.claim.attempt

    def _stop_segments(self) -> None:
        """Marks the segments not finished cancelled, unless a newer attempt of the task runs them; their
        workers stop at their next heartbeat, as the task is no longer `started` (or soon will not be)."""
        newer_attempt = exists().where(
            Task.id == self.claim.task_id, Task.status == "started", Task.attempts != self.claim.attempt
        )
        with session_scope(self.context.sessions) as session:
            session.execute(
                update(VideoSegment)
                .where(VideoSegment.task_id == self.claim.task_id, not_(newer_attempt))
                .where(VideoSegment.status.not_in(FINAL_STATUSES))
                .values(status="cancelled", heartbeat_at=None, updated_at=utc_now())
            )
