"""Background requests, as CVAT's requests API: `GET /v1/requests`, `GET /v1/requests/{rq_id}` and
`DELETE /v1/requests/{rq_id}` (cancel), and the routes that start them: on a task,
`POST /v1/tasks/{id}/dataset/export`, `.../annotations/export`, `.../annotations` (import) and
`.../backup/export`; `POST /v1/tasks/backup` (restore) and `POST /v1/datasets/export` (several tasks in
one dataset). Each answers 202 with the request's id; its result (a file to download, or a new task) is
named in the request once finished. `GET /v1/formats` lists the annotation formats."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from veil.core.schemas import (
    DatasetExport,
    FormatPublic,
    FormatsPublic,
    RequestCreated,
    RequestListQuery,
    RequestPublic,
    RequestsPublic,
)
from veil.core.services.requests import (
    RequestInput,
    cancel_request,
    describe_request,
    get_request,
    list_requests,
    request_on_task,
    request_with_input,
)
from veil.core.services.task_annotations import (
    MediaChoice,
    request_annotations_import,
    request_dataset_export,
    request_export,
)
from veil.core.services.uploads import upload_length_limit
from veil.engine.annotations import formats
from veil.server.api.deps import CurrentKey, QueueDep, SessionDep, SettingsDep, StorageDep
from veil.server.problems import problem_responses
from veil.server.uploads import read_file_field

__all__ = ["router"]

router = APIRouter(tags=["Requests"])

_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


_UPLOAD = Annotated[
    str | None,
    Query(
        max_length=64,
        description=(
            "A complete resumable upload (POST /v1/uploads with the metadata `purpose request`) to read "
            "instead of a file in the body."
        ),
    ),
]

_FORMAT = Annotated[
    str,
    Query(
        alias="format",
        max_length=100,
        description="The format's name, as `GET /v1/formats` gives it.",
        examples=["CVAT for video 1.1"],
    ),
]


@router.get("/v1/formats", responses=problem_responses(401, 429))
def read_formats(key: CurrentKey) -> FormatsPublic:
    """The annotation formats: name, version, export and import support, and the media kinds each fits."""
    return FormatsPublic(
        results=[FormatPublic.model_validate(info, from_attributes=True) for info in formats()]
    )


@router.get("/v1/requests", responses=problem_responses(401, 422, 429))
def read_requests(
    query: Annotated[RequestListQuery, Query()], key: CurrentKey, session: SessionDep
) -> RequestsPublic:
    """Your requests, a page at a time, with sorting, search, equality filters and a JSON Logic filter."""
    return list_requests(session, owner=key, query=query)


@router.get("/v1/requests/{rq_id}", responses=problem_responses(401, 404, 422, 429))
def read_request(rq_id: str, key: CurrentKey, session: SessionDep) -> RequestPublic:
    """The request's status and progress; once finished, where its result is."""
    return describe_request(get_request(session, owner=key, request_id=rq_id))


@router.delete("/v1/requests/{rq_id}", responses=problem_responses(401, 404, 409, 422, 429))
def cancel(rq_id: str, key: CurrentKey, session: SessionDep) -> RequestPublic:
    """Cancel a queued or running request: it fails with a message saying so, and keeps no result."""
    return cancel_request(session, owner=key, request_id=rq_id)


@router.post(
    "/v1/tasks/{task_id}/backup/export", status_code=202, responses=problem_responses(401, 404, 409, 422, 429)
)
def export_backup(
    task_id: str, key: CurrentKey, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> RequestCreated:
    """Back up a finished task: a zip with its manifest, the task, its input and generated files and its
    detections, to restore with `POST /v1/tasks/backup` (here or on another Veil server)."""
    record = request_on_task(
        session, owner=key, settings=settings, operation="export:backup", task_id=task_id
    )
    queue.enqueue_request(record.id, record.queue)
    return RequestCreated(rq_id=record.id)


@router.post(
    "/v1/tasks/backup",
    status_code=202,
    openapi_extra=_FILE_BODY,
    responses=problem_responses(400, 401, 413, 422, 429, 507),
)
async def import_backup(
    request: Request,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    queue: QueueDep,
    upload: _UPLOAD = None,
) -> RequestCreated:
    """Restore a backup, sent in the multipart field `file` or uploaded before (`upload`), as a new task
    of yours (new ids, its files stored again); the finished request names the task in `result_id`."""
    max_bytes = upload_length_limit(settings, "request")
    record = await request_with_input(
        session,
        owner=key,
        settings=settings,
        storage=storage,
        operation="import:backup",
        task_id=None,
        source=await _input(request, upload, max_bytes),
        max_bytes=max_bytes,
    )
    queue.enqueue_request(record.id, record.queue)
    return RequestCreated(rq_id=record.id)


@router.post(
    "/v1/tasks/{task_id}/dataset/export",
    status_code=202,
    responses=problem_responses(401, 404, 409, 422, 429),
)
def export_dataset(
    task_id: str,
    format_name: _FORMAT,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    save_images: bool = False,
    media: Annotated[
        MediaChoice,
        Query(
            description="Which photo or video the images come from: the anonymized output, or the original."
        ),
    ] = "anonymized",
    frame_step: Annotated[int, Query(ge=1, le=10_000, description="Videos: every n-th frame.")] = 1,
) -> RequestCreated:
    """Export a completed task's detections in a format, with its images (`save_images=true`: video frames
    as JPEG); the result is a zip."""
    record = request_export(
        session,
        owner=key,
        settings=settings,
        task_id=task_id,
        format_name=format_name,
        save_images=save_images,
        media=media,
        frame_step=frame_step,
    )
    queue.enqueue_request(record.id, record.queue)
    return RequestCreated(rq_id=record.id)


@router.post("/v1/datasets/export", status_code=202, responses=problem_responses(401, 404, 409, 422, 429))
def export_tasks_dataset(
    asked: DatasetExport, key: CurrentKey, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> RequestCreated:
    """Export several completed tasks as one dataset in a format (as a CVAT project is): each task's
    items, and with `save_images` its images, under a folder named by its id; the result is a zip."""
    record = request_dataset_export(session, owner=key, settings=settings, asked=asked)
    queue.enqueue_request(record.id, record.queue)
    return RequestCreated(rq_id=record.id)


@router.post(
    "/v1/tasks/{task_id}/annotations/export",
    status_code=202,
    responses=problem_responses(401, 404, 409, 422, 429),
)
def export_annotations(
    task_id: str,
    format_name: _FORMAT,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> RequestCreated:
    """Export a completed task's detections in a format, without images; the result is a zip."""
    record = request_export(
        session, owner=key, settings=settings, task_id=task_id, format_name=format_name, save_images=False
    )
    queue.enqueue_request(record.id, record.queue)
    return RequestCreated(rq_id=record.id)


@router.post(
    "/v1/tasks/{task_id}/annotations",
    status_code=202,
    openapi_extra=_FILE_BODY,
    responses=problem_responses(400, 401, 404, 409, 413, 422, 429, 507),
)
async def import_annotations(
    task_id: str,
    format_name: _FORMAT,
    request: Request,
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    queue: QueueDep,
    render: Annotated[
        bool, Query(description="Then obscure the imported boxes on the original, in a new render task.")
    ] = False,
    upload: _UPLOAD = None,
) -> RequestCreated:
    """Import corrected annotations of a completed task, sent in the multipart field `file` or uploaded
    before (`upload`): a zip, or a bare XML or JSON file. The result is a veil.detections/1 document
    stored with the task."""
    record = await request_annotations_import(
        session,
        owner=key,
        settings=settings,
        storage=storage,
        task_id=task_id,
        format_name=format_name,
        render=render,
        source=await _input(request, upload, settings.max_upload_bytes),
    )
    queue.enqueue_request(record.id, record.queue)
    return RequestCreated(rq_id=record.id)


async def _input(request: Request, upload: str | None, max_bytes: int) -> RequestInput:
    """The upload's id when one is named, else the multipart field `file` of the body."""
    if upload is not None:
        return upload
    sent = await read_file_field(request, field_name="file", max_bytes=max_bytes)
    return sent.filename, sent.chunks
