"""`run_task` on BlurIt tasks: files under the file root in and out, the seed's result shape, auto_delete
and lifespan."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from tests.engine.video_factory import make_video
from tests.helpers import FACE_BOX, load_rgb, noise_image, save_image, validate_report
from tests.worker.conftest import key_row, submit_blurit, task_row
from veil.core.db import session_scope
from veil.core.maintenance import run_maintenance
from veil.core.models import ApiKey, ExpiringPath, Task, utc_now
from veil.engine.detections import Detections
from veil.worker.context import WorkerContext
from veil.worker.tasks import run_task


@pytest.fixture
def root(context: WorkerContext) -> Path:
    folder = context.settings.file_root_dir
    folder.mkdir(parents=True)
    return folder


def _box(array: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in FACE_BOX)
    return array[y1:y2, x1:x2]


def test_file_task_with_auto_delete_and_lifespan(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    """GIVEN a photo under the file root, auto_delete on, and an output image kept for 60 s
    WHEN the task runs, and later maintenance runs past the lifespan
    THEN the outputs are written, the input is gone, the result has the seed's shape, and the output
    image (only it) is deleted once its lifespan is over."""
    source = save_image(root / "in" / "photo.png")
    original, size = load_rgb(source), source.stat().st_size
    body = {
        "input_image": {"protocol": "file", "path": "in/photo.png", "auto_delete": "True"},
        "output_image": {"protocol": "file", "path": "out/photo_blured.png", "lifespan": 60},
        "output_json": {"protocol": "file", "path": "out/detections.json"},
    }
    task_id = submit_blurit(context, owner, body)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "completed"
    assert task.result == {
        "input_image": {"protocol": "file", "path": "in/photo.png", "auto_delete": True},
        "output_image": {"protocol": "file", "path": "out/photo_blured.png", "lifespan": 60},
        "output_json": {"protocol": "file", "path": "out/detections.json"},
        "size": {"IMAGE": size, "VIDEO": 0},
        "nb_files": {"IMAGE": 1, "VIDEO": 0},
    }
    assert not source.exists()
    assert _box(load_rgb(root / "out" / "photo_blured.png")).std() < _box(original).std() / 3
    assert validate_report(root / "out" / "detections.json")["media"]["type"] == "image"
    assert sorted(p.name for p in (root / "out").iterdir()) == ["detections.json", "photo_blured.png"]
    key = key_row(context, owner.id)
    assert (key.files_processed, key.bytes_processed) == (1, size)

    with context.sessions() as session:
        [expiring] = session.scalars(select(ExpiringPath))
    assert expiring.path == "out/photo_blured.png"
    assert timedelta(seconds=55) < expiring.expires_at - utc_now() <= timedelta(seconds=60)
    with session_scope(context.sessions) as session:
        session.execute(update(ExpiringPath).values(expires_at=utc_now() - timedelta(seconds=1)))
    run_maintenance(context.sessions, context.storage, context.queue, context.settings)
    assert sorted(p.name for p in (root / "out").iterdir()) == ["detections.json"]
    with context.sessions() as session:
        assert session.scalars(select(ExpiringPath)).all() == []


def test_video_file_task_counts_a_video(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    clip = make_video(root / "clip.mp4", frames=8, audio=None)
    body = {
        "input_video": {"protocol": "file", "path": "clip.mp4"},
        "output_video": {"protocol": "file", "path": "clip_blured.mp4"},
    }
    task_id = submit_blurit(context, owner, body)
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert task.result is not None
    assert (task.result["nb_files"], task.result["size"]) == (
        {"IMAGE": 0, "VIDEO": 1},
        {"IMAGE": 0, "VIDEO": clip.path.stat().st_size},
    )
    assert clip.path.exists()  # no auto_delete
    assert (root / "clip_blured.mp4").stat().st_size > 0
    assert key_row(context, owner.id).frames_processed == 8


def test_a_bad_single_file_fails_the_task(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    body = {
        "input_image": {"protocol": "file", "path": "broken.png", "auto_delete": True},
        "output_image": {"protocol": "file", "path": "broken_blured.png"},
    }
    task_id = submit_blurit(context, owner, body)
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error is not None and task.error["detail"].startswith("broken.png: ")
    assert (root / "broken.png").exists()  # auto_delete only after success
    assert sorted(p.name for p in root.iterdir()) == ["broken.png"]


def test_an_input_removed_before_the_run_fails_the_task(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    source = save_image(root / "photo.png")
    body = {
        "input_image": {"protocol": "file", "path": "photo.png"},
        "output_json": {"protocol": "file", "path": "photo.json"},
    }
    task_id = submit_blurit(context, owner, body)
    source.unlink()
    run_task(context, task_id)
    assert task_row(context, task_id).error == {
        "title": "Input not found",
        "detail": "input_image 'photo.png': no such file under the file root",
    }


def test_an_input_past_expires_at_is_not_used(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    save_image(root / "photo.png")
    soon = (utc_now() + timedelta(hours=1)).isoformat()
    body = {
        "input_image": {"protocol": "file", "path": "photo.png", "expires_at": soon},
        "output_json": {"protocol": "file", "path": "photo.json"},
    }
    task_id = submit_blurit(context, owner, body)
    past = {**body["input_image"], "expires_at": (utc_now() - timedelta(seconds=1)).isoformat()}
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == task_id).values(input={**body, "input_image": past}))
    run_task(context, task_id)
    task = task_row(context, task_id)
    assert task.error is not None and task.error["title"] == "Input expired"
    assert not (root / "photo.json").exists()


def test_directory_task(context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections) -> None:
    """GIVEN a directory with two photos, a damaged photo and a text file, and auto_delete on
    WHEN the directory task runs (after a killed attempt left a partial file in the output)
    THEN both photos are anonymized into the mirrored output with reports beside them, the damaged one is
    listed in `failures` without failing the task, and only the processed inputs are deleted."""
    batch = root / "batch"
    good = [save_image(batch / "a.png"), save_image(batch / "sub" / "b.png", noise_image(seed=1))]
    size = sum(path.stat().st_size for path in good)
    (batch / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (batch / "notes.txt").write_text("not media")
    (root / "out").mkdir()
    (root / "out" / ".a.veil-partial-99.png").write_bytes(b"left by a killed attempt")
    body = {
        "input_directory": {"protocol": "file", "path": "batch", "auto_delete": True},
        "output_directory": {"protocol": "file", "path": "out"},
    }
    task_id = submit_blurit(context, owner, body)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "completed"
    assert task.result is not None
    failures = task.result.pop("failures")
    assert task.result == {
        **body,
        "size": {"IMAGE": size, "VIDEO": 0},
        "nb_files": {"IMAGE": 2, "VIDEO": 0},
    }
    [failure] = failures
    assert failure["path"] == "batch/bad.png"
    assert failure["reason"].startswith("bad.png: ")
    written = sorted(str(p.relative_to(root / "out")) for p in (root / "out").rglob("*") if p.is_file())
    assert written == ["a.png", "a.png.json", "sub/b.png", "sub/b.png.json"]
    validate_report(root / "out" / "sub" / "b.png.json")
    assert _box(load_rgb(root / "out" / "a.png")).std() < _box(noise_image()).std() / 3
    left = sorted(str(p.relative_to(batch)) for p in batch.rglob("*"))
    assert left == ["bad.png", "notes.txt"]
    key = key_row(context, owner.id)
    assert (key.files_processed, key.bytes_processed) == (2, size)
