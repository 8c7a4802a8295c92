"""`run_task` on `/v1` tasks, called directly: what a client then sees in the task, its generated files and
the key's usage counters."""

from __future__ import annotations

import errno
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
from sqlalchemy import update

from tests.engine.video_factory import make_video
from tests.helpers import (
    FACE_BOX,
    RecordingQueue,
    load_rgb,
    modes_below,
    save_image,
    umask,
    validate_report,
)
from tests.photo_factory import damaged_pixels_png
from tests.worker.conftest import generated, key_row, submit, task_row, upload
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, Task, utc_now
from veil.core.services.tasks import cancel_task
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.fake import FakeDetector
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import InputNotReadyError, claim_task
from veil.worker.tasks import run_task


def _box(array: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in FACE_BOX)
    return array[y1:y2, x1:x2]


def _stored_tree(context: WorkerContext, owner: ApiKey, task_id: str) -> list[str]:
    folder = context.storage.root / owner.id / task_id
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def photo(context: WorkerContext, owner: ApiKey, tmp_path: Path) -> Any:
    return upload(context, owner, save_image(tmp_path / "photo.png"))


def test_anonymize_photo(
    context: WorkerContext, owner: ApiKey, photo: Any, queue: RecordingQueue, one_face: Detections
) -> None:
    """GIVEN an uploaded photo and a detector that finds one face
    WHEN the anonymize task runs
    THEN it completes with a blurred copy under the same name and a valid report as generated files,
    and the key's counters grow by one file of the photo's size."""
    task_id = submit(context, owner, photo.id)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.progress, task.error, task.attempts) == ("completed", 1.0, None, 1)
    assert task.result == {"detections": {"face": 1}, "frames": 1}
    media, report = generated(context, task_id)
    assert (media.name, media.media_type, report.name, report.media_type) == (
        "photo.png",
        "image/png",
        "photo.png.json",
        "application/json",
    )
    assert media.properties == {"size": media.size, "width": 200, "height": 150}
    assert media.expires_at is not None and media.expires_at > utc_now() + timedelta(days=6)
    original = load_rgb(context.storage.path(photo.storage_key))
    blurred = load_rgb(context.storage.path(media.storage_key))
    assert _box(blurred).std() < _box(original).std() / 3
    assert np.array_equal(blurred[:, 150:], original[:, 150:])
    [frame] = validate_report(context.storage.path(report.storage_key))["frames"]
    assert frame["detections"][0]["box"] == list(FACE_BOX)
    key = key_row(context, owner.id)
    assert (key.files_processed, key.bytes_processed, key.frames_processed) == (1, photo.size, 0)
    assert queue.callbacks == []


def test_detect_writes_only_the_report(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections
) -> None:
    task_id = submit(context, owner, photo.id, operation="detect")
    run_task(context, task_id)
    [report] = generated(context, task_id)
    assert report.name == "photo.png.json"
    assert validate_report(context.storage.path(report.storage_key))["media"]["type"] == "image"
    assert task_row(context, task_id).result == {"detections": {"face": 1}, "frames": 1}


def test_video_counts_its_frames(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, one_face: Detections
) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=12, audio=None)
    source = upload(context, owner, clip.path)
    task_id = submit(context, owner, source.id, parameters={"detect_every": 4})
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.result) == ("completed", {"detections": {"face": 1}, "frames": 12})
    media, _report = generated(context, task_id)
    assert media.media_type == "video/mp4"
    assert media.properties["frame_count"] == 12
    assert key_row(context, owner.id).frames_processed == 12


@pytest.mark.parametrize("kind", ["photo", "video"])
def test_outputs_in_storage_are_owner_only_whatever_the_umask(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, one_face: Detections, kind: str
) -> None:
    """GIVEN a umask that lets everyone read new files
    WHEN an anonymize task stores its outputs (media written by the engine, and the JSON report)
    THEN every stored file is 0600 and every folder 0700."""
    with umask(0o000):
        source = tmp_path / "photo.png" if kind == "photo" else tmp_path / "clip.mp4"
        if kind == "photo":
            save_image(source)
        else:
            make_video(source, frames=4, audio=None)
        task_id = submit(context, owner, upload(context, owner, source).id)
        run_task(context, task_id)

    assert task_row(context, task_id).status == "completed"
    assert len(generated(context, task_id)) == 2
    modes = modes_below(context.storage.root)
    files = {name for name in modes if (context.storage.root / name).is_file()}
    assert {modes[name] for name in files} == {0o600}, modes
    assert {mode for name, mode in modes.items() if name not in files} == {0o700}, modes


def test_a_name_without_extension_is_typed_from_content(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, one_face: Detections
) -> None:
    source = upload(context, owner, save_image(tmp_path / "photo.png"), name="IMG_0001")
    task_id = submit(context, owner, source.id)
    run_task(context, task_id)
    assert task_row(context, task_id).status == "completed"
    assert [file.name for file in generated(context, task_id)] == ["IMG_0001.png", "IMG_0001.png.json"]
    assert _stored_tree(context, owner, task_id) == ["1/IMG_0001.png", "1/IMG_0001.png.json"]


def test_a_second_run_is_a_no_op(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections
) -> None:
    task_id = submit(context, owner, photo.id)
    run_task(context, task_id)
    first = [(file.id, file.storage_key) for file in generated(context, task_id)]
    run_task(context, task_id)
    assert [(file.id, file.storage_key) for file in generated(context, task_id)] == first
    assert task_row(context, task_id).attempts == 1
    assert key_row(context, owner.id).files_processed == 1


def test_a_task_running_elsewhere_is_left_alone(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections
) -> None:
    task_id = submit(context, owner, photo.id)
    assert claim_task(context, task_id) is not None  # another worker, heartbeat fresh
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert (task.status, task.attempts) == ("started", 1)
    assert generated(context, task_id) == []


def test_retry_after_a_killed_attempt_leaves_one_set_of_outputs(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections
) -> None:
    """GIVEN an attempt that was killed after writing part of its outputs (its heartbeat now stale)
    WHEN the task's message is delivered again
    THEN the new attempt claims it, and storage and the database hold exactly its outputs."""
    task_id = submit(context, owner, photo.id)
    assert claim_task(context, task_id) is not None
    leftovers = context.storage.root / owner.id / task_id / "1"
    leftovers.mkdir(parents=True)
    (leftovers / "photo.png").write_bytes(b"half")
    (leftovers / ".photo.partial.png").write_bytes(b"half")
    stale = utc_now() - timedelta(seconds=context.settings.stale_task_s + 1)
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == task_id).values(heartbeat_at=stale))

    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.attempts) == ("completed", 2)
    assert _stored_tree(context, owner, task_id) == ["2/photo.png", "2/photo.png.json"]
    assert [file.storage_key for file in generated(context, task_id)] == [
        f"{owner.id}/{task_id}/2/photo.png",
        f"{owner.id}/{task_id}/2/photo.png.json",
    ]


def test_cancelled_mid_run_stops_without_outputs(
    context: WorkerContext,
    owner: ApiKey,
    tmp_path: Path,
    queue: RecordingQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN a 40-frame video whose detector sees the client cancel the task at the fourth frame
    WHEN the task runs
    THEN it stops within a frame or two, leaves no generated file, and stays cancelled."""
    source = upload(context, owner, make_video(tmp_path / "clip.mp4", frames=40, audio=None).path)
    callback = "http://127.0.0.1:9/hook"
    task_id = submit(
        context,
        owner,
        source.id,
        parameters={"detect_every": 1, "detectors": ["face"]},
        callback_url=callback,
    )
    detector = FakeDetector(script=lambda index, frame: _cancel_at(index, 3, context, owner, task_id))
    monkeypatch.setattr("veil.engine.anonymizer.load_detector", lambda name, config: detector)

    run_task(context, task_id)

    assert detector.calls < 10
    assert task_row(context, task_id).status == "cancelled"
    assert generated(context, task_id) == []
    assert _stored_tree(context, owner, task_id) == []
    assert queue.callbacks == []


def test_progress_and_heartbeat_are_visible_while_the_task_runs(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a video whose detector, at its 20th frame, waits until the task's heartbeat moves on
    WHEN the task runs
    THEN the task shows partial progress then, and the heartbeat is refreshed although no frame
    completes meanwhile (as during a long photo or a model load)."""
    source = upload(context, owner, make_video(tmp_path / "clip.mp4", frames=40, audio=None).path)
    task_id = submit(context, owner, source.id, parameters={"detect_every": 1, "detectors": ["face"]})
    seen: list[tuple[float, bool]] = []

    def script(index: int, frame: np.ndarray) -> Detections:
        if index == 20:
            first = task_row(context, task_id)
            deadline = time.monotonic() + 5
            while (
                task_row(context, task_id).heartbeat_at == first.heartbeat_at and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            seen.append((first.progress, task_row(context, task_id).heartbeat_at != first.heartbeat_at))
        return Detections.empty()

    detector = FakeDetector(script=script)
    monkeypatch.setattr("veil.engine.anonymizer.load_detector", lambda name, config: detector)
    run_task(context, task_id)

    [(progress, beat_moved)] = seen
    assert 0.4 <= progress < 0.6
    assert beat_moved
    assert task_row(context, task_id).status == "completed"


def _cancel_at(index: int, at: int, context: WorkerContext, owner: ApiKey, task_id: str) -> Detections:
    if index == at:
        with context.sessions() as session:
            cancel_task(session, owner=owner, task_id=task_id)
    return Detections.empty()


def test_corrupt_input_fails_with_a_clear_detail(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, queue: RecordingQueue, one_face: Detections
) -> None:
    damaged = tmp_path / "broken.png"
    damaged.write_bytes(damaged_pixels_png())  # whole headers, so the upload is taken; decoding fails
    source = upload(context, owner, damaged)
    task_id = submit(context, owner, source.id, callback_url="http://127.0.0.1:9/hook")
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error is not None and task.error["title"] == "Corrupt media"
    assert task.error["detail"].startswith("broken.png: ")
    assert str(context.settings.storage_dir) not in task.error["detail"]
    assert generated(context, task_id) == []
    assert _stored_tree(context, owner, task_id) == []
    assert key_row(context, owner.id).files_processed == 0
    assert queue.callbacks == [task_id]


def test_a_full_disk_fails_the_task_saying_so(
    context: WorkerContext, owner: ApiKey, photo: Any, monkeypatch: pytest.MonkeyPatch, one_face: Detections
) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    task_id = submit(context, owner, photo.id)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error is not None and task.error["title"] == "Disk full"
    assert "disk is full" in task.error["detail"]
    assert _stored_tree(context, owner, task_id) == []


def test_an_unexpected_error_fails_with_a_generic_message(
    context: WorkerContext,
    owner: ApiKey,
    photo: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(name: str, config: DetectorConfig) -> FakeDetector:
        raise RuntimeError("boom")

    monkeypatch.setattr("veil.engine.anonymizer.load_detector", broken)
    task_id = submit(context, owner, photo.id)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error == {
        "title": "Internal error",
        "detail": "the worker failed unexpectedly; its log has the details",
    }
    assert "boom" in caplog.text


def test_parameters_that_no_longer_validate_fail_the_task(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections
) -> None:
    task_id = submit(context, owner, photo.id)
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == task_id).values(parameters={"blur": "lots"}))
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert task.error is not None and task.error["title"] == "Invalid parameters"
    assert "blur: unknown field 'blur'" in task.error["detail"]


def test_a_deleted_input_fails_the_task(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections
) -> None:
    task_id = submit(context, owner, photo.id)
    context.storage.delete(photo.storage_key)
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert task.error is not None and task.error["title"] == "Input not found"


def _chained(context: WorkerContext, owner: ApiKey, upstream_id: str) -> str:
    """A task on another task's output, stored directly: the API only accepts a completed upstream."""
    with session_scope(context.sessions) as session:
        task = Task(owner_id=owner.id, operation="detect", input={"task": upstream_id})
        session.add(task)
        session.flush()
        return task.id


def test_a_chained_task_works_on_the_output_media(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections
) -> None:
    upstream = submit(context, owner, photo.id)
    run_task(context, upstream)
    task_id = submit(context, owner, upstream, operation="detect")
    run_task(context, task_id)
    [report] = generated(context, task_id)
    assert report.name == "photo.png.json"
    assert task_row(context, task_id).status == "completed"


def test_a_chained_task_waits_for_its_input_which_wakes_it_when_done(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections, queue: RecordingQueue
) -> None:
    upstream = submit(context, owner, photo.id)
    task_id = _chained(context, owner, upstream)
    queue.task_ids.clear()
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert (task.status, task.attempts, task.heartbeat_at) == ("queued", 0, None)
    assert queue.task_ids == [], "a waiting task holds no message"

    run_task(context, upstream)
    assert queue.task_ids == [task_id], "the input's end enqueues the task waiting on it"
    run_task(context, task_id)
    assert task_row(context, task_id).status == "completed"


def test_a_chained_task_whose_input_ended_during_the_check_is_enqueued(
    context: WorkerContext, owner: ApiKey, photo: Any, one_face: Detections, queue: RecordingQueue
) -> None:
    upstream = submit(context, owner, photo.id)
    task_id = _chained(context, owner, upstream)
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == upstream).values(status="completed"))
    queue.task_ids.clear()

    with patch("veil.worker.v1.find_output_media", side_effect=InputNotReadyError(task_id, upstream)):
        run_task(context, task_id)

    assert task_row(context, task_id).status == "queued"
    assert queue.task_ids == [task_id]


@pytest.mark.parametrize("upstream_status", ["failed", "cancelled"])
def test_a_chained_task_fails_when_its_input_did_not_complete(
    context: WorkerContext, owner: ApiKey, photo: Any, upstream_status: str
) -> None:
    upstream = submit(context, owner, photo.id)
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == upstream).values(status=upstream_status))
    task_id = _chained(context, owner, upstream)
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert task.error == {
        "title": "Input task did not complete",
        "detail": f"input task {upstream} {upstream_status}; nothing to process",
    }
