"""The tasks API: `POST /v1/tasks`, `GET /v1/tasks`, `GET /v1/tasks/{id}`, `DELETE /v1/tasks/{id}`
(cancel) and `GET /v1/tasks/{id}/detections` (a render task's whole document)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from veil.core.schemas import TaskCreate, TaskListQuery, TaskPublic, TasksPublic
from veil.core.services.tasks import (
    cancel_task,
    create_task,
    describe_task,
    get_task,
    get_task_document,
    list_tasks,
    tasks_waiting_on,
)
from veil.server.api.deps import CurrentKey, QueueDep, SessionDep, SettingsDep, StorageDep
from veil.server.content import stored_file_response
from veil.server.problems import problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/tasks", tags=["Tasks"])

_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The veil.detections/1 document the render task obscures.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@router.post("", status_code=202, responses=problem_responses(400, 401, 409, 422, 429))
def submit_task(
    body: TaskCreate,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    queue: QueueDep,
) -> TaskPublic:
    """Run an operation on a file, or on the output of an anonymize task; poll `GET /v1/tasks/{id}` or give
    a `callback_url`. A render task names its document, uploaded as a file, in `detections_file`."""
    task = create_task(session, owner=key, settings=settings, storage=storage, request=body)
    queue.enqueue(task.id, task.queue)  # after the commit, so the worker finds the task
    return task


@router.get("", responses=problem_responses(401, 422, 429))
def read_tasks(query: Annotated[TaskListQuery, Query()], key: CurrentKey, session: SessionDep) -> TasksPublic:
    """Your tasks, a page at a time, with sorting, search, equality filters and a JSON Logic filter."""
    return list_tasks(session, owner=key, query=query)


@router.get("/{task_id}", responses=problem_responses(401, 404, 422, 429))
def read_task(task_id: str, key: CurrentKey, session: SessionDep) -> TaskPublic:
    """The task's status and progress; once completed, its generated files."""
    return describe_task(session, get_task(session, owner=key, task_id=task_id))


@router.get(
    "/{task_id}/detections",
    response_class=FileResponse,
    responses={**_DOCUMENT, **problem_responses(401, 404, 422, 429)},
)
def read_task_document(
    task_id: str, request: Request, key: CurrentKey, session: SessionDep, storage: StorageDep
) -> Response:
    """The whole document a render task obscures; task views carry only its summary (`render_document`)."""
    record = get_task_document(session, owner=key, task_id=task_id)
    return stored_file_response(
        storage,
        request,
        key=record.storage_key,
        media_type=record.media_type,
        filename=record.name,
        file_id=record.id,
    )


@router.delete("/{task_id}", responses=problem_responses(401, 404, 409, 422, 429))
def cancel(task_id: str, key: CurrentKey, session: SessionDep, queue: QueueDep) -> TaskPublic:
    """Cancel a queued or running task; a finished one answers 409."""
    cancelled = cancel_task(session, owner=key, task_id=task_id)
    for waiting in tasks_waiting_on(session, task_id=task_id):
        queue.enqueue(*waiting)
    return cancelled
