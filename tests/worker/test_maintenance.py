"""The periodic pass: expired files and outputs deleted (not those a pending task reads), tasks of dead
workers queued again or failed, and queued tasks sent again at start."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.helpers import RecordingQueue, save_image
from tests.worker.conftest import generated, submit, task_row, upload
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, ExpiringPath, StoredFile, Task, utc_now
from veil.core.services.maintenance import MAX_ATTEMPTS, recover_tasks, run_maintenance
from veil.engine.detections import Detections
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import claim_task
from veil.worker.tasks import run_task


def _maintain(context: WorkerContext) -> None:
    run_maintenance(context.sessions, context.storage, context.queue, context.settings)


def _expire(context: WorkerContext, *file_ids: str) -> None:
    with session_scope(context.sessions) as session:
        session.execute(
            update(StoredFile)
            .where(StoredFile.id.in_(file_ids))
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )


def _file_ids(context: WorkerContext) -> set[str]:
    with context.sessions() as session:
        return set(session.scalars(select(StoredFile.id)))


def test_expired_files_are_deleted_unless_a_pending_task_reads_them(
    context: WorkerContext, owner: ApiKey, tmp_path: Path
) -> None:
    expired = upload(context, owner, save_image(tmp_path / "old.png"))
    read = upload(context, owner, save_image(tmp_path / "read.png"))
    fresh = upload(context, owner, save_image(tmp_path / "new.png"))
    submit(context, owner, read.id)  # queued, so its input stays
    _expire(context, expired.id, read.id)

    _maintain(context)

    assert _file_ids(context) == {read.id, fresh.id}
    assert not context.storage.path(expired.storage_key).exists()
    assert context.storage.path(read.storage_key).exists()


def test_outputs_a_pending_chained_task_reads_are_kept(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, one_face: Detections
) -> None:
    source = upload(context, owner, save_image(tmp_path / "photo.png"))
    upstream = submit(context, owner, source.id)
    run_task(context, upstream)
    submit(context, owner, upstream, operation="detect")
    outputs = [file.id for file in generated(context, upstream)]
    _expire(context, source.id, *outputs)

    _maintain(context)

    assert _file_ids(context) == set(outputs)


def test_expired_paths_leading_outside_the_root_are_left_alone(
    context: WorkerContext, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    root = context.settings.file_root_dir
    root.mkdir(parents=True)
    (root / "link.txt").symlink_to(outside)
    (root / "old").mkdir()
    (root / "old" / "a.png").write_bytes(b"x")
    past = utc_now() - timedelta(seconds=1)
    with session_scope(context.sessions) as session:
        session.add_all(
            [ExpiringPath(path="link.txt", expires_at=past), ExpiringPath(path="old", expires_at=past)]
        )

    _maintain(context)

    assert outside.exists()
    assert not (root / "old").exists()
    with context.sessions() as session:
        assert session.scalars(select(ExpiringPath)).all() == []


def test_expired_paths_are_deleted_below_their_keys_root_never_through_a_link(
    context: WorkerContext, owner: ApiKey, tmp_path: Path
) -> None:
    """GIVEN expired outputs recorded below a key's own root: a plain file, a link to a file outside, and
    a link to a file beside it, a path through a link to a folder outside; and a file of the same name at
    the top of the file root
    WHEN maintenance runs
    THEN the key's file and the link itself go; what the links point at, and the file root's own file of
    the same name, stay."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.png").write_bytes(b"not ours")
    root = context.settings.file_root_dir / owner.id
    root.mkdir(parents=True)
    (root / "a.png").write_bytes(b"expired")
    (context.settings.file_root_dir / "a.png").write_bytes(b"someone else's")
    (root / "link.png").symlink_to(outside / "a.png")
    (root / "kept.png").write_bytes(b"kept")
    (root / "alias.png").symlink_to(root / "kept.png")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    past = utc_now() - timedelta(seconds=1)
    with session_scope(context.sessions) as session:
        session.add_all(
            [
                ExpiringPath(path=path, root=str(root), expires_at=past)
                for path in ("a.png", "link.png", "alias.png", "escape/a.png")
            ]
        )

    _maintain(context)

    assert sorted(p.name for p in root.iterdir()) == ["escape", "kept.png"]
    assert (outside / "a.png").read_bytes() == b"not ours"
    assert (context.settings.file_root_dir / "a.png").exists()
    with context.sessions() as session:
        assert session.scalars(select(ExpiringPath)).all() == []


def _started(context: WorkerContext, owner: ApiKey, tmp_path: Path, *, attempts: int, stale: bool) -> str:
    source = upload(context, owner, save_image(tmp_path / f"{attempts}-{stale}.png"))
    task_id = submit(context, owner, source.id, callback_url="http://127.0.0.1:9/hook")
    assert claim_task(context, task_id) is not None
    beat = utc_now() - timedelta(seconds=context.settings.stale_task_s + 1 if stale else 0)
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == task_id).values(heartbeat_at=beat, attempts=attempts))
    return task_id


def test_tasks_of_dead_workers_are_queued_again(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, queue: RecordingQueue
) -> None:
    dead = _started(context, owner, tmp_path, attempts=1, stale=True)
    alive = _started(context, owner, tmp_path, attempts=1, stale=False)

    _maintain(context)

    task = task_row(context, dead)
    assert (task.status, task.heartbeat_at, task.attempts) == ("queued", None, 1)
    assert task_row(context, alive).status == "started"
    assert queue.task_ids == [dead]
    assert queue.callbacks == []


def test_a_task_whose_worker_died_too_often_fails(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, queue: RecordingQueue
) -> None:
    task_id = _started(context, owner, tmp_path, attempts=MAX_ATTEMPTS, stale=True)

    _maintain(context)

    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error is not None and task.error["title"] == "Worker lost"
    assert (queue.task_ids, queue.callbacks) == ([], [task_id])
    run_task(context, task_id)  # a late duplicate message changes nothing
    assert task_row(context, task_id).status == "failed"


def test_staging_left_by_dead_workers_is_removed_unless_a_worker_runs_its_task(
    context: WorkerContext, owner: ApiKey, tmp_path: Path
) -> None:
    """GIVEN half-made outputs in staging from two attempts of a task whose worker died too often, and the
        staging folder of a task a live worker runs
    WHEN maintenance runs
    THEN the failed task's folders are gone and the running one's is untouched."""
    lost = _started(context, owner, tmp_path, attempts=MAX_ATTEMPTS, stale=True)
    alive = _started(context, owner, tmp_path, attempts=1, stale=False)
    staging = context.settings.staging_dir
    for folder in (f"{lost}-2", f"{lost}-3", f"{alive}-1"):
        (staging / folder / "output_image").mkdir(parents=True)
        (staging / folder / "output_image" / "street.jpg").write_bytes(b"half an output")

    _maintain(context)

    assert sorted(folder.name for folder in staging.iterdir()) == [f"{alive}-1"]
    assert (staging / f"{alive}-1" / "output_image" / "street.jpg").read_bytes() == b"half an output"


def test_scratch_files_untouched_for_a_day_are_deleted_with_the_folders_left_empty(
    context: WorkerContext,
) -> None:
    """GIVEN in the scratch folder a staged upload a killed API process left two days ago, one being
        written now, a folder emptied two days ago and one just made for a file about to be written
    WHEN maintenance runs (files are stale after `scratch_max_age_s`, a day by default)
    THEN the old file and the old or emptied folders are gone, and what is in use stays."""
    scratch = context.settings.scratch_dir
    left = scratch / "key_a" / "file_a" / ".photo.partial.png"
    writing = scratch / "key_a" / "file_b" / ".clip.partial.mp4"
    for path in (left, writing):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half an upload")
    (scratch / "key_b" / "file_c").mkdir(parents=True)
    (scratch / "key_b" / "file_d").mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (left, left.parent, scratch / "key_b" / "file_c"):
        os.utime(path, (two_days_ago, two_days_ago))

    _maintain(context)

    remaining = sorted(str(path.relative_to(scratch)) for path in scratch.rglob("*"))
    assert remaining == ["key_a", "key_a/file_b", "key_a/file_b/.clip.partial.mp4", "key_b", "key_b/file_d"]


def test_a_task_chained_on_one_that_failed_for_good_is_woken(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, queue: RecordingQueue
) -> None:
    lost = _started(context, owner, tmp_path, attempts=MAX_ATTEMPTS, stale=True)
    with session_scope(context.sessions) as session:
        chained = Task(owner_id=owner.id, operation="detect", input={"task": lost})
        session.add(chained)
        session.flush()
        chained_id = chained.id

    _maintain(context)

    assert queue.task_ids == [chained_id]


@pytest.mark.parametrize("statuses", [[], ["queued", "started", "queued", "completed"]])
def test_recover_tasks_sends_every_queued_task_again(
    context: WorkerContext, owner: ApiKey, tmp_path: Path, queue: RecordingQueue, statuses: list[str]
) -> None:
    source = upload(context, owner, save_image(tmp_path / "photo.png"))
    task_ids = [submit(context, owner, source.id) for _ in statuses]
    with session_scope(context.sessions) as session:
        for task_id, status in zip(task_ids, statuses, strict=True):
            session.execute(update(Task).where(Task.id == task_id).values(status=status))
    queued = [task_id for task_id, status in zip(task_ids, statuses, strict=True) if status == "queued"]

    assert recover_tasks(context.sessions, queue) == len(queued)  # type: ignore[arg-type]
    assert queue.task_ids == queued
