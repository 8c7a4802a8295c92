"""A long video shared by two real worker processes (`veil worker` on the embedded broker, with the fake
face detector of tests/worker/fake_face_worker.py): the joined result equals a single run, cancelling the
task stops every segment, and a worker killed during a segment costs that segment only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlalchemy import func, select

from tests.engine.video_factory import find_square, make_video, square_box
from tests.worker.conftest import submit, upload
from veil.core.database.connection import migrate, session_scope
from veil.core.database.models import ApiKey, StoredFile, Task, VideoSegment, WorkerBeat
from veil.core.queue import TaskQueue, create_celery
from veil.core.services.keys import create_api_key
from veil.core.services.tasks import cancel_task
from veil.core.settings import Settings
from veil.engine.detectors.fake import FakeDetector
from veil.engine.redactors.style import DEFAULT_STYLES
from veil.engine.video import VideoOptions, anonymize_video
from veil.worker.context import WorkerContext

# kombu's SQLAlchemy transport (the embedded broker this test sends on) uses a loader SQLAlchemy deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

# 60 frames at 25 fps (the square crosses the frame once), a key frame every 6: five segments of 12 frames.
FRAMES, GOP = 60, 6
ENV = {
    "VEIL_SPLIT_MIN_S": "2",
    "VEIL_SEGMENT_MIN_S": "0.4",
    "VEIL_STALE_TASK_S": "4",
    "VEIL_TEST_DETECT_DELAY_S": "0.08",  # a segment (26 frames looked at) then takes about 2 s
}
PARAMETERS = {"detectors": ["face"], "detect_every": 1}


@dataclass
class Workers:
    context: WorkerContext
    owner: ApiKey
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def children(self, process: subprocess.Popen[bytes]) -> set[int]:
        """The pool processes of one worker (they run the tasks)."""
        listed = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        return {int(pid) for pid in listed.split()}

    def submit_video(self, path: Path) -> str:
        file = upload(self.context, self.owner, path)
        task_id = submit(self.context, self.owner, file.id, parameters=PARAMETERS)
        with self.context.sessions() as session:
            queue = session.get_one(Task, task_id).queue
        self.context.queue.enqueue(task_id, queue)
        return task_id

    def task(self, task_id: str) -> Task:
        with self.context.sessions() as session:
            return session.get_one(Task, task_id)

    def segments(self, task_id: str) -> list[VideoSegment]:
        with self.context.sessions() as session:
            rows = session.scalars(select(VideoSegment).where(VideoSegment.task_id == task_id))
            return sorted(rows, key=lambda row: row.index)

    def wait(self, what: str, check: Callable[[], bool], timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                logs = "\n".join(log.read_text()[-3000:] for log in self.logs)
                raise AssertionError(f"no {what} in {timeout_s} s; worker logs:\n{logs}")
            time.sleep(0.05)

    def wait_for_end(self, task_id: str) -> Task:
        self.wait(
            f"end of task {task_id}",
            lambda: self.task(task_id).status in {"completed", "failed", "cancelled"},
        )
        return self.task(task_id)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    data_dir = tmp_path_factory.mktemp("segment-workers")
    env = {**os.environ, "VEIL_DATA_DIR": str(data_dir), **ENV}
    settings = Settings(data_dir=data_dir, split_min_s=2, segment_min_s=0.4, stale_task_s=4)
    migrate(settings.database_url)
    context = WorkerContext.create(settings, TaskQueue(create_celery(settings)))
    with session_scope(context.sessions) as session:
        owner = create_api_key(session, name="newsroom").record
    logs = [data_dir / f"worker-{n}.log" for n in range(2)]
    processes = []
    for log in logs:
        with log.open("wb") as out:
            command = [sys.executable, "-m", "tests.worker.fake_face_worker", "--queues", "video"]
            processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT))
    running = Workers(context, owner, processes, logs)
    try:
        running.wait(
            "two workers", lambda: _beating(context) == 2 and all(running.children(p) for p in processes)
        )
        yield running
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _beating(context: WorkerContext) -> int:
    with context.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WorkerBeat)) or 0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "walk.mp4", frames=FRAMES, gop=GOP).path


def _output(workers: Workers, task_id: str, suffix: str) -> Path:
    with workers.context.sessions() as session:
        rows = session.scalars(select(StoredFile).where(StoredFile.task_id == task_id))
        (key,) = [row.storage_key for row in rows if row.name.endswith(suffix)]
    path = workers.context.storage.local_file(key)
    assert path is not None
    return path


def _decoded(path: Path) -> tuple[list[Any], list[np.ndarray], float]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        duration = float(container.duration or 0)
    return [f.pts for f in frames], [f.to_ndarray(format="bgr24") for f in frames], duration


def test_two_workers_share_a_video_and_join_it_as_one_run(
    workers: Workers, clip: Path, tmp_path: Path
) -> None:
    """GIVEN two worker processes and a 2.4 s video, split from 2 s into segments of 0.4 s
    WHEN its anonymize task runs
    THEN both workers run segments, and the output has the frames, times and duration of a single run, the
    square is blurred in every frame, and the report has one track for it."""
    task_id = workers.submit_video(clip)
    task = workers.wait_for_end(task_id)

    assert task.status == "completed", task.error
    rows = workers.segments(task_id)
    assert [(row.status, row.attempts) for row in rows] == [("completed", 1)] * 5
    assert len({row.worker for row in rows}) == 2
    single = tmp_path / "single.mp4"
    detector = FakeDetector(script=lambda _call, frame: find_square(frame))
    anonymize_video(clip, single, [detector], DEFAULT_STYLES, VideoOptions(detect_every=1))
    times, pixels, duration = _decoded(_output(workers, task_id, ".mp4"))
    single_times, _, single_duration = _decoded(single)
    assert (times, duration) == (single_times, single_duration)
    _, source, _ = _decoded(clip)
    for index, (got, before) in enumerate(zip(pixels, source, strict=True)):
        x1, y1, x2, y2 = (int(v) for v in square_box(index))
        assert np.abs(got.astype(int) - before)[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5].mean() > 30, index
    assert task.result == {"detections": {"face": 1}, "frames": FRAMES}


def test_cancelling_the_task_stops_every_segment(workers: Workers, clip: Path) -> None:
    """GIVEN a split task whose segments run in both workers
    WHEN the client cancels the task
    THEN no segment is left running or waiting, none completes afterwards, and no segment file is kept."""
    task_id = workers.submit_video(clip)
    workers.wait(
        "two running segments", lambda: sum(r.status == "started" for r in workers.segments(task_id)) == 2
    )
    with workers.context.sessions() as session:
        cancel_task(session, owner=workers.owner, task_id=task_id)
    completed = {row.index for row in workers.segments(task_id) if row.status == "completed"}

    workers.wait(
        "segments stopped",
        lambda: {r.status for r in workers.segments(task_id)} <= {"completed", "cancelled"},
        15,
    )
    time.sleep(2 * float(ENV["VEIL_TEST_DETECT_DELAY_S"]) * 26)  # longer than a segment would still run
    rows = workers.segments(task_id)
    assert {row.index for row in rows if row.status == "completed"} == completed
    assert {row.status for row in rows if row.index not in completed} == {"cancelled"}
    assert workers.task(task_id).status == "cancelled"
    workers.wait(
        "segment files removed",
        lambda: not list(workers.context.settings.storage_dir.glob(f"*/{task_id}.segments/*")),
        15,
    )


def test_a_worker_killed_during_a_segment_reruns_that_segment_only(workers: Workers, clip: Path) -> None:
    """GIVEN a split task running in both workers
    WHEN the pool process of the worker that does not hold the task is killed with SIGKILL in a segment
    THEN the task completes, that segment ran twice and every other segment once."""
    task_id = workers.submit_video(clip)
    holder: list[subprocess.Popen[bytes]] = []

    def holds_the_task() -> bool:
        started = f"task {task_id}: attempt 1 started"
        found = [
            p for p, log in zip(workers.processes, workers.logs, strict=True) if started in log.read_text()
        ]
        holder.extend(found)
        return bool(found)

    workers.wait("the worker holding the task", holds_the_task, 30)
    other = next(p for p in workers.processes if p is not holder[0])
    victim: list[tuple[int, int]] = []

    def running_in_other() -> bool:
        pool = workers.children(other)
        for row in workers.segments(task_id):
            pid = int(str(row.worker).rpartition(":")[2] or 0) if row.worker else 0
            if row.status == "started" and pid in pool:
                victim.append((row.index, pid))
                return True
        return False

    workers.wait("a segment in the other worker", running_in_other, 30)
    index, pid = victim[0]
    os.kill(pid, signal.SIGKILL)
    task = workers.wait_for_end(task_id)

    assert task.status == "completed", task.error
    attempts = {row.index: row.attempts for row in workers.segments(task_id)}
    assert attempts == {n: 2 if n == index else 1 for n in range(5)}
    times, _, _ = _decoded(_output(workers, task_id, ".mp4"))
    assert len(times) == FRAMES
