"""A long video's task split into segments, with `run_task` called directly: one process runs every
segment itself (the messages for other workers are only recorded), so what is checked here is the
bookkeeping: the plan in the database, the joined outputs, failure and cancellation. Real worker processes
sharing the segments are in tests/e2e/test_segments.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import select

from tests.engine.video_factory import find_square, make_video
from tests.helpers import RecordingQueue
from tests.worker.conftest import generated, submit, task_row, upload
from veil.core.database.models import ApiKey, StoredFile, VideoSegment
from veil.core.services.tasks import cancel_task
from veil.core.settings import Settings
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.fake import FakeDetector
from veil.engine.errors import ModelError
from veil.engine.report import Report
from veil.worker.context import WorkerContext
from veil.worker.tasks import run_task

# 60 frames at 25 fps with a key frame every 6: five segments of 12 frames at 0.4 s each.
FRAMES, GOP = 60, 6
Script = Callable[[int, np.ndarray], Detections]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", split_min_s=2.0, segment_min_s=0.4)


@pytest.fixture
def clip(context: WorkerContext, owner: ApiKey, tmp_path: Path) -> StoredFile:
    return upload(context, owner, make_video(tmp_path / "walk.mp4", frames=FRAMES, gop=GOP).path)


def detect_with(monkeypatch: pytest.MonkeyPatch, script: Script) -> None:
    """Every face detector the worker loads runs `script` (call number, frame) -> boxes."""

    def load(name: str, config: DetectorConfig) -> FakeDetector:
        return FakeDetector(script=script if name == "face" else None)

    monkeypatch.setattr("veil.engine.anonymizer.load_detector", load)


def find_squares(_call: int, frame: np.ndarray) -> Detections:
    return find_square(frame)


def segments(context: WorkerContext, task_id: str) -> list[tuple[int, str, int]]:
    with context.sessions() as session:
        rows = session.scalars(select(VideoSegment).where(VideoSegment.task_id == task_id))
        return sorted((row.index, row.status, row.attempts) for row in rows)


def content(context: WorkerContext, file: StoredFile) -> Path:
    path = context.storage.local_file(file.storage_key)
    assert path is not None
    return path


def frame_times(path: Path) -> list[int | None]:
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def test_a_long_video_runs_in_segments_and_matches_a_single_run(
    context: WorkerContext,
    owner: ApiKey,
    clip: StoredFile,
    queue: RecordingQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN a 2.4 s video, splitting set at 2 s and segments of 0.4 s
    WHEN its anonymize task runs
    THEN five segments are recorded and sent to the task's queue, all complete once, and the task's video
    and report equal those of the same task run whole; the segments' own files are gone."""
    detect_with(monkeypatch, find_squares)
    split_id = submit(context, owner, clip.id, parameters={"detectors": ["face"]})
    run_task(context, split_id)
    whole = replace(context, settings=context.settings.model_copy(update={"split_min_s": 0.0}))
    whole_id = submit(whole, owner, clip.id, parameters={"detectors": ["face"]})
    run_task(whole, whole_id)

    assert task_row(context, split_id).status == "completed"
    assert segments(context, split_id) == [(index, "completed", 1) for index in range(5)]
    assert queue.segments == [(split_id, index, "video") for index in range(5)]
    assert segments(context, whole_id) == []
    (video, report), (whole_video, whole_report) = generated(context, split_id), generated(context, whole_id)
    assert frame_times(content(context, video)) == frame_times(content(context, whole_video))
    assert len(frame_times(content(context, video))) == FRAMES
    joined = content(context, report).read_text()
    assert joined == content(context, whole_report).read_text()
    assert Report.from_dict(json.loads(joined)).counts_by_label() == {"face": 1}
    assert task_row(context, split_id).result == task_row(context, whole_id).result
    assert not list(context.settings.storage_dir.glob(f"{owner.id}/{split_id}.segments/*"))


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_render_of_a_long_videos_report_runs_in_the_same_segments_and_gives_back_its_video(
    context: WorkerContext, owner: ApiKey, clip: StoredFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a long video's anonymize task, run in five segments
    WHEN a render task obscures the boxes of its report on the same video
    THEN the render runs in the same five segments, and its video is the anonymized one, frame for frame
    (run whole, the encoder's choices at the cuts would differ)."""
    detect_with(monkeypatch, find_squares)
    anonymize_id = submit(context, owner, clip.id, parameters={"detectors": ["face"]})
    run_task(context, anonymize_id)
    anonymized, report = generated(context, anonymize_id)
    document = json.loads(content(context, report).read_text())

    render_id = submit(context, owner, clip.id, operation="render", parameters={"detections": document})
    run_task(context, render_id)

    assert task_row(context, render_id).status == "completed", task_row(context, render_id).error
    assert segments(context, render_id) == [(index, "completed", 1) for index in range(5)]
    rendered = generated(context, render_id)[0]
    pairs = list(zip(decoded(content(context, rendered)), decoded(content(context, anonymized)), strict=True))
    assert len(pairs) == FRAMES
    assert all(np.array_equal(mine, theirs) for mine, theirs in pairs)


def test_a_detect_task_joins_the_reports_only(
    context: WorkerContext, owner: ApiKey, clip: StoredFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    detect_with(monkeypatch, find_squares)
    task_id = submit(context, owner, clip.id, operation="detect", parameters={"detectors": ["face"]})
    run_task(context, task_id)

    assert task_row(context, task_id).result == {"detections": {"face": 1}, "frames": FRAMES}
    assert [f.name for f in generated(context, task_id)] == ["walk.mp4.json"]
    assert [status for _, status, _ in segments(context, task_id)] == ["completed"] * 5


def test_a_failed_segment_fails_the_task_with_its_reason(
    context: WorkerContext, owner: ApiKey, clip: StoredFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a detector that breaks once the square is past the middle of the frame
    THEN the task fails with the reason a single run would give, and the segments after it are cancelled."""

    def script(_call: int, frame: np.ndarray) -> Detections:
        found = find_square(frame)
        if len(found) and found.xyxy[0, 0] > 140:
            raise ModelError("the face model crashed")
        return found

    detect_with(monkeypatch, script)
    task_id = submit(context, owner, clip.id, parameters={"detectors": ["face"]})
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.error) == (
        "failed",
        {"title": "Detector failed", "detail": "the face model crashed"},
    )
    statuses = [status for _, status, _ in segments(context, task_id)]
    failed = statuses.index("failed")  # the first segment whose frames (with context) reach x = 140
    assert statuses == ["completed"] * failed + ["failed"] + ["cancelled"] * (4 - failed)
    assert generated(context, task_id) == []


def test_cancelling_the_task_cancels_its_segments(
    context: WorkerContext, owner: ApiKey, clip: StoredFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a client that cancels the task while its second segment runs
    THEN the task stays cancelled, no segment runs after, and nothing is kept."""
    calls: list[int] = []
    task_id = ""

    def script(call: int, frame: np.ndarray) -> Detections:
        calls.append(call)
        if len(calls) == 20:  # segment 0 looks at 13 frames, segment 1 at 25
            with context.sessions() as session:
                cancel_task(session, owner=owner, task_id=task_id)
        return find_square(frame)

    detect_with(monkeypatch, script)
    task_id = submit(context, owner, clip.id, parameters={"detectors": ["face"], "detect_every": 1})
    run_task(context, task_id)

    assert task_row(context, task_id).status == "cancelled"
    statuses = [status for _, status, _ in segments(context, task_id)]
    assert statuses[0] == "completed" and set(statuses[1:]) == {"cancelled"}
    assert len(calls) < 13 + 25
    assert generated(context, task_id) == []
    assert not list(context.settings.storage_dir.glob(f"{owner.id}/{task_id}*/*"))
