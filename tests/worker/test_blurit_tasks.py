"""`run_task` on BlurIt tasks: files below the key's file root in and out, the seed's result shape,
auto_delete and lifespan; no symbolic link followed and no input or unasked file replaced, also when the
tree changed after the task was accepted."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from tests.engine.video_factory import make_video
from tests.helpers import FACE_BOX, load_rgb, noise_image, save_image, validate_report
from tests.worker.conftest import key_row, submit_blurit, task_row
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, ExpiringPath, Task, utc_now
from veil.core.services.keys import create_api_key, revoke_api_key
from veil.core.services.maintenance import run_maintenance
from veil.engine.detections import Detections
from veil.worker import tasks
from veil.worker.context import WorkerContext
from veil.worker.tasks import run_task


@pytest.fixture
def root(context: WorkerContext, owner: ApiKey) -> Path:
    """The owner's file root: its own folder below the file root."""
    folder = context.settings.file_root_dir / owner.id
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
    assert (expiring.path, expiring.root) == ("out/photo_blured.png", str(root))
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
    WHEN the directory task runs (after a killed attempt left a partial file in its staging directory)
    THEN both photos are anonymized into the mirrored output with reports beside them, the damaged one is
    listed in `failures` without failing the task, only the processed inputs are deleted, and nothing
    is left in staging."""
    batch = root / "batch"
    good = [save_image(batch / "a.png"), save_image(batch / "sub" / "b.png", noise_image(seed=1))]
    size = sum(path.stat().st_size for path in good)
    (batch / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (batch / "notes.txt").write_text("not media")
    (root / "out").mkdir()
    body = {
        "input_directory": {"protocol": "file", "path": "batch", "auto_delete": True},
        "output_directory": {"protocol": "file", "path": "out"},
    }
    task_id = submit_blurit(context, owner, body)
    killed = context.settings.data_dir / "staging" / f"{task_id}-0"
    killed.mkdir(parents=True)
    (killed / "a.png").write_bytes(b"left by a killed attempt")
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
    assert "damaged" in failure["reason"]
    written = sorted(str(p.relative_to(root / "out")) for p in (root / "out").rglob("*") if p.is_file())
    assert written == ["a.png", "a.png.json", "sub/b.png", "sub/b.png.json"]
    validate_report(root / "out" / "sub" / "b.png.json")
    assert _box(load_rgb(root / "out" / "a.png")).std() < _box(noise_image()).std() / 3
    left = sorted(str(p.relative_to(batch)) for p in batch.rglob("*"))
    assert left == ["bad.png", "notes.txt"]
    assert list((context.settings.data_dir / "staging").iterdir()) == []
    key = key_row(context, owner.id)
    assert (key.files_processed, key.bytes_processed) == (2, size)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Photos and an empty folder outside the file root, which no task may read, write or delete."""
    folder = tmp_path / "outside"
    (folder / "empty").mkdir(parents=True)
    save_image(folder / "secret.png", noise_image(seed=7))
    return folder


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def test_a_directory_task_skips_links_and_never_writes_or_deletes_through_them(
    context: WorkerContext, owner: ApiKey, root: Path, outside: Path, one_face: Detections
) -> None:
    """GIVEN an input directory holding links to a photo outside the root, to another key's photo and to
    a folder outside, with auto_delete on
    WHEN, after the task was accepted, a folder of the output is replaced by a link out of the root
    THEN only real files are processed; each link is listed in `failures` with why; nothing is read,
    written or deleted outside the root, nor in the other key's folder."""
    with session_scope(context.sessions) as session:
        bob = create_api_key(session, name="bob").record
    bobs = save_image(context.settings.file_root_dir / bob.id / "bob.png")
    batch = root / "batch"
    save_image(batch / "a.png")
    save_image(batch / "sub" / "b.png", noise_image(seed=1))
    (batch / "secret.png").symlink_to(outside / "secret.png")
    (batch / "sub" / "deeper.png").symlink_to(outside / "secret.png")
    (batch / "bob.png").symlink_to(bobs)
    (batch / "linked").symlink_to(outside, target_is_directory=True)
    before = _listing(outside)
    body = {
        "input_directory": {"protocol": "file", "path": "batch", "auto_delete": True},
        "output_directory": {"protocol": "file", "path": "out"},
    }
    task_id = submit_blurit(context, owner, body)
    (root / "out").mkdir()
    (root / "out" / "sub").symlink_to(outside, target_is_directory=True)

    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "completed", task.error
    assert task.result is not None
    assert task.result["nb_files"] == {"IMAGE": 1, "VIDEO": 0}
    reasons = {failure["path"]: failure["reason"] for failure in task.result["failures"]}
    assert set(reasons) == {
        "batch/bob.png",
        "batch/linked",
        "batch/secret.png",
        "batch/sub/deeper.png",
        "out/sub/b.png",
    }
    assert all("symbolic link" in reason for reason in reasons.values()), reasons
    assert sorted(p.name for p in (root / "out").iterdir()) == ["a.png", "a.png.json", "sub"]
    assert _listing(outside) == before
    assert bobs.exists()
    assert sorted(p.name for p in batch.iterdir()) == ["bob.png", "linked", "secret.png", "sub"]


@pytest.mark.parametrize("replaced", ["in", "out"])
def test_a_file_task_whose_path_became_a_link_fails_and_touches_nothing_outside(
    context: WorkerContext, owner: ApiKey, root: Path, outside: Path, one_face: Detections, replaced: str
) -> None:
    """GIVEN an accepted file task
    WHEN its input folder or its output folder is then replaced by a link out of the root
    THEN the task fails saying so, and the outside folder is neither read into an output nor written."""
    save_image(root / "in" / "secret.png")
    (root / "out").mkdir()
    body = {
        "input_image": {"protocol": "file", "path": "in/secret.png", "auto_delete": True},
        "output_image": {"protocol": "file", "path": "out/secret.png"},
        "output_json": {"protocol": "file", "path": "out/secret.json"},
    }
    task_id = submit_blurit(context, owner, body)
    (root / replaced).rename(root / f"{replaced}.moved")
    (root / replaced).symlink_to(outside, target_is_directory=True)
    before = _listing(outside)

    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error is not None and task.error["title"] == "Path outside the file root"
    assert f"'{replaced}' is a symbolic link" in task.error["detail"]
    assert _listing(outside) == before
    assert list((root / "out.moved").iterdir() if replaced == "out" else (root / "out").iterdir()) == []


def test_the_worker_reads_below_the_owners_root_only(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    """GIVEN a photo at the top of the file root, outside the owner's own folder, and a task row naming it
    (as if the tree had changed after the task was accepted)
    WHEN the owner's task and an admin's task run
    THEN the owner's task finds no such file; the admin's, whose root is the whole file root, does."""
    save_image(context.settings.file_root_dir / "top.png")
    save_image(root / "mine.png")
    with session_scope(context.sessions) as session:
        admin = create_api_key(session, name="root", admin=True).record
    body = {
        "input_image": {"protocol": "file", "path": "mine.png"},
        "output_json": {"protocol": "file", "path": "top.json"},
    }
    mine, admins = (
        submit_blurit(context, owner, body),
        submit_blurit(
            context, admin, body | {"input_image": {"protocol": "file", "path": f"{owner.id}/mine.png"}}
        ),
    )
    with session_scope(context.sessions) as session:
        session.execute(
            update(Task)
            .where(Task.id == mine)
            .values(input={**body, "input_image": {"protocol": "file", "path": "top.png"}})
        )

    run_task(context, mine)
    run_task(context, admins)

    assert task_row(context, mine).error == {
        "title": "Input not found",
        "detail": "input_image 'top.png': no such file under the file root",
    }
    assert task_row(context, admins).status == "completed"
    assert (context.settings.file_root_dir / "top.json").is_file()
    assert not (root / "top.json").exists()


def test_a_task_of_a_key_revoked_after_submitting_it_does_not_run(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    """GIVEN a queued task that would delete its input (auto_delete) and write an output
    WHEN its key is revoked before a worker takes the task
    THEN the task fails saying so, and the files below the key's root are as they were."""
    source = save_image(root / "photo.png")
    body = {
        "input_image": {"protocol": "file", "path": "photo.png", "auto_delete": True},
        "output_image": {"protocol": "file", "path": "photo_blured.png"},
    }
    task_id = submit_blurit(context, owner, body)
    with session_scope(context.sessions) as session:
        revoke_api_key(session, key_id=owner.id)

    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error == {
        "title": "Key revoked",
        "detail": "the key that submitted this task was revoked before it ran",
    }
    assert sorted(path.name for path in root.iterdir()) == [source.name]


def _photo_task(context: WorkerContext, owner: ApiKey, root: Path, **changes: Any) -> str:
    save_image(root / "photo.png")
    body = {
        "input_image": {"protocol": "file", "path": "photo.png"},
        "output_image": {"protocol": "file", "path": "photo_blured.png"},
        **changes,
    }
    return submit_blurit(context, owner, body)


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_that_appeared_after_acceptance_is_replaced_only_with_overwrite(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections, overwrite: bool
) -> None:
    task_id = _photo_task(context, owner, root, overwrite=overwrite)
    (root / "photo_blured.png").write_bytes(b"someone else's")

    run_task(context, task_id)

    task = task_row(context, task_id)
    if overwrite:
        assert task.status == "completed"
        assert (root / "photo_blured.png").read_bytes() != b"someone else's"
    else:
        assert task.error is not None and task.error["title"] == "Output not written"
        assert "already exists" in task.error["detail"]
        assert (root / "photo_blured.png").read_bytes() == b"someone else's"


def test_a_retry_of_the_same_task_replaces_its_own_earlier_output(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    """GIVEN a task whose first attempt wrote its output, then lost its worker (queued again)
    WHEN the second attempt runs, without overwrite
    THEN it replaces that output and completes."""
    task_id = _photo_task(context, owner, root)
    run_task(context, task_id)
    first = (root / "photo_blured.png").stat().st_ino
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == task_id).values(status="queued", result=None))

    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.attempts) == ("completed", 2)
    assert (root / "photo_blured.png").stat().st_ino != first


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_made_a_hard_link_to_the_input_after_acceptance_is_refused(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections, overwrite: bool
) -> None:
    task_id = _photo_task(context, owner, root, overwrite=overwrite)
    original = (root / "photo.png").read_bytes()
    os.link(root / "photo.png", root / "photo_blured.png")

    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.error is not None and "is an input of this task" in task.error["detail"]
    assert (root / "photo.png").read_bytes() == (root / "photo_blured.png").read_bytes() == original


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_auto_delete_never_deletes_through_a_link_swapped_in_after_the_run(
    context: WorkerContext,
    owner: ApiKey,
    root: Path,
    outside: Path,
    one_face: Detections,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """GIVEN a task with auto_delete on whose input folder is replaced by a link out of the root after the
    photo was processed, just before the input is deleted
    WHEN the task completes
    THEN the file of the same name outside the root stays."""
    save_image(root / "in" / "secret.png")
    if kind == "file":
        body = {
            "input_image": {"protocol": "file", "path": "in/secret.png", "auto_delete": True},
            "output_json": {"protocol": "file", "path": "secret.json"},
        }
    else:
        body = {
            "input_directory": {"protocol": "file", "path": "in", "auto_delete": True},
            "output_directory": {"protocol": "file", "path": "out"},
        }
    task_id = submit_blurit(context, owner, body)
    complete = tasks.complete_task

    def swap_then_complete(*args: Any) -> bool:
        (root / "in").rename(root / "in.moved")
        (root / "in").symlink_to(outside, target_is_directory=True)
        return complete(*args)

    monkeypatch.setattr(tasks, "complete_task", swap_then_complete)
    before = _listing(outside)

    run_task(context, task_id)

    assert task_row(context, task_id).status == "completed"
    assert _listing(outside) == before


def test_an_input_directory_removed_before_the_run_fails_the_task(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections
) -> None:
    save_image(root / "batch" / "a.png")
    body = {
        "input_directory": {"protocol": "file", "path": "batch"},
        "output_directory": {"protocol": "file", "path": "out"},
    }
    task_id = submit_blurit(context, owner, body)
    (root / "batch" / "a.png").unlink()
    (root / "batch").rmdir()
    run_task(context, task_id)
    assert task_row(context, task_id).error == {
        "title": "Input not found",
        "detail": "input_directory 'batch': no such directory under the file root",
    }


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_an_output_folder_that_became_a_file_after_acceptance_fails_saying_so(
    context: WorkerContext, owner: ApiKey, root: Path, one_face: Detections, kind: str
) -> None:
    """GIVEN an accepted task whose output folder is then replaced by a file
    WHEN it runs
    THEN it fails with "Output not written" naming the field, not as an internal error."""
    save_image(root / "in" / "photo.png")
    (root / "out").mkdir()
    if kind == "file":
        field, path = "output_json", "out/photo.json"
        body = {
            "input_image": {"protocol": "file", "path": "in/photo.png"},
            field: {"protocol": "file", "path": path},
        }
    else:
        field, path = "output_directory", "out"
        body = {
            "input_directory": {"protocol": "file", "path": "in"},
            field: {"protocol": "file", "path": path},
        }
    task_id = submit_blurit(context, owner, body)
    (root / "out").rmdir()
    (root / "out").write_bytes(b"someone else's")

    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.error is not None and task.error["title"] == "Output not written"
    assert task.error["detail"] == f"{field} {path!r}: a file is where a directory has to be"
    assert (root / "out").read_bytes() == b"someone else's"
