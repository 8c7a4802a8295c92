"""The BlurIt-style task API: `POST /api/task/file`, `POST /api/task/directory`, `GET /api/task/{task_id}`."""

from __future__ import annotations

from fastapi import APIRouter

from veil.core.services.blurit import (
    BlurItTask,
    DirectoryTaskCreate,
    FileTaskCreate,
    TaskCreated,
    create_directory_task,
    create_file_task,
    get_blurit_task,
)
from veil.core.services.blurit_s3 import s3_files
from veil.server.api.deps import CurrentKey, QueueDep, SessionDep, SettingsDep
from veil.server.problems import problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/task", tags=["BlurIt tasks"])


@router.post("/file", responses=problem_responses(400, 401, 422, 429))
def submit_file_task(
    body: FileTaskCreate, key: CurrentKey, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> TaskCreated:
    """Anonymize one photo or video below the file root, or in S3 (protocol "s3"); poll
    `GET /api/task/{task_id}`."""
    task = create_file_task(
        session, owner=key, request=body, file_root=settings.file_root_dir, s3=s3_files(settings)
    )
    queue.enqueue(task.id, task.queue)
    return TaskCreated(task_id=task.id)


@router.post("/directory", responses=problem_responses(400, 401, 422, 429))
def submit_directory_task(
    body: DirectoryTaskCreate, key: CurrentKey, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> TaskCreated:
    """Anonymize every photo and video below a directory of the file root, or a key prefix in S3."""
    task = create_directory_task(
        session, owner=key, request=body, file_root=settings.file_root_dir, s3=s3_files(settings)
    )
    queue.enqueue(task.id, task.queue)
    return TaskCreated(task_id=task.id)


@router.get("/{task_id}", responses=problem_responses(401, 404, 422, 429))
def read_task(task_id: str, key: CurrentKey, session: SessionDep) -> BlurItTask:
    """The task's status and result; `error` says why when the status is "failed"."""
    return get_blurit_task(session, owner=key, task_id=task_id)
