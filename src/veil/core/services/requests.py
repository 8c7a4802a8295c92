"""Background requests (`/v1/requests`): exports, imports and backups of tasks, run by a worker and followed
as CVAT's requests API is (status, progress, message, result_url, expires_at, operation).

The server records a request here and enqueues its id once the row is committed; the worker
(`veil.worker.requests`) claims it, runs it and records how it ended. A request's uploaded input (a backup,
an annotations file) waits in storage under `<owner>/<rq_id>/input/` until the worker is done with it; its
result is a generated file that lasts the files' lifespan, and the request lasts as long. A key sees its
own requests only, admin keys too: a result holds a task's media and detections.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from veil.core.database.ids import new_id
from veil.core.database.listing import Listing, fetch_page
from veil.core.database.models import ApiKey, BackgroundRequest, Task, utc_now
from veil.core.errors import ConflictError, NotFoundError
from veil.core.queue import PHOTO_QUEUE, VIDEO_QUEUE
from veil.core.schemas import (
    RequestListQuery,
    RequestOperation,
    RequestOperationPublic,
    RequestPublic,
    RequestsPublic,
)
from veil.core.services.backups import check_backup_possible
from veil.core.services.files import safe_filename
from veil.core.services.tasks import get_task
from veil.core.services.uploads import take_request_upload
from veil.core.settings import Settings
from veil.core.storage import Storage
from veil.core.storage.base import write_stream

__all__ = [
    "CANCELLED_MESSAGE",
    "REQUEST_LISTING",
    "RequestInput",
    "cancel_request",
    "create_request",
    "describe_request",
    "get_request",
    "list_requests",
    "request_on_task",
    "request_queue",
    "request_with_input",
]

REQUEST_LISTING = Listing(
    model=BackgroundRequest,
    fields={
        "id": BackgroundRequest.id,
        "operation": BackgroundRequest.operation,
        "status": BackgroundRequest.status,
        "task_id": BackgroundRequest.task_id,
        "format": BackgroundRequest.format,
        "created_at": BackgroundRequest.created_at,
        "expires_at": BackgroundRequest.expires_at,
    },
    search_fields=("id", "operation", "status", "format"),
)

CANCELLED_MESSAGE = "Cancelled at the client's request."

RequestInput = str | tuple[str | None, AsyncIterator[bytes]]
"""A request's file: the id of a complete resumable upload of purpose "request", or a file sent with the
request, as (the client's file name, its bytes as they arrive)."""
_ACTIVE = ("queued", "started")


def create_request(
    session: Session,
    *,
    owner: ApiKey,
    settings: Settings,
    operation: RequestOperation,
    task_id: str | None,
    format_name: str | None = None,
    parameters: dict[str, Any] | None = None,
    queue: str = PHOTO_QUEUE,
    request_id: str | None = None,
) -> BackgroundRequest:
    """Records a queued request (committed); the caller enqueues it after this returns."""
    record = BackgroundRequest(
        id=request_id or new_id("rq"),
        owner_id=owner.id,
        operation=operation,
        task_id=task_id,
        format=format_name,
        parameters=parameters or {},
        queue=queue,
        expires_at=utc_now() + timedelta(seconds=settings.file_lifespan_s),
    )
    session.add(record)
    session.commit()
    return record


def request_on_task(
    session: Session,
    *,
    owner: ApiKey,
    settings: Settings,
    operation: RequestOperation,
    task_id: str,
    format_name: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> BackgroundRequest:
    """Records a queued request on task `task_id`, which `owner` must see; the caller enqueues it.

    Raises:
        NotFoundError: no such task for this key.
        ConflictError: a backup of a task that has not finished.
    """
    task = get_task(session, owner=owner, task_id=task_id)
    if operation == "export:backup":
        check_backup_possible(task)
    return create_request(
        session,
        owner=owner,
        settings=settings,
        operation=operation,
        task_id=task.id,
        format_name=format_name,
        parameters=parameters,
        queue=request_queue([task]),
    )


def request_queue(tasks: Sequence[Task]) -> str:
    """The queue of a request on `tasks`: no request needs a GPU, but one on a video (or GPU) task may run
    long, so it waits with the videos."""
    return PHOTO_QUEUE if all(task.queue == PHOTO_QUEUE for task in tasks) else VIDEO_QUEUE


async def request_with_input(
    session: Session,
    *,
    owner: ApiKey,
    settings: Settings,
    storage: Storage,
    operation: RequestOperation,
    task_id: str | None,
    source: RequestInput,
    max_bytes: int,
    format_name: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> BackgroundRequest:
    """`create_request` for a request that reads a file of at most `max_bytes`, sent with it or in a
    complete resumable upload of purpose "request": the bytes are stored first, in the request's folder,
    and deleted again when the request cannot be recorded.

    Raises:
        InvalidInputError: (under `upload`) no such upload of this key, or not one for a request, or not
            complete.
        UploadTooLargeError: more than `max_bytes` arrived (nothing is kept).
        StorageFullError: the disk is full (nothing is kept).
    """
    request_id = new_id("rq")
    folder = f"{owner.id}/{request_id}/input"
    if isinstance(source, str):
        key = await asyncio.to_thread(
            take_request_upload, session, storage=storage, owner=owner, upload_id=source, folder=folder
        )
    else:
        filename, chunks = source
        key = f"{folder}/{safe_filename(filename)}"
        staged = storage.staging_path(key)
        await write_stream(staged, chunks, max_bytes)
        # Uploading to S3 and waiting for SQLite's write lock block; keep them off the event loop.
        await asyncio.to_thread(storage.commit, staged, key)
    try:
        return await asyncio.to_thread(
            create_request,
            session,
            owner=owner,
            settings=settings,
            operation=operation,
            task_id=task_id,
            format_name=format_name,
            parameters={**(parameters or {}), "input_key": key},
            request_id=request_id,
        )
    except BaseException:
        storage.delete(key)
        raise


def get_request(session: Session, *, owner: ApiKey, request_id: str) -> BackgroundRequest:
    """The request `request_id` if it is `owner`'s and has not expired.

    Raises:
        NotFoundError: no such request for this key.
    """
    record = session.scalar(select(BackgroundRequest).where(BackgroundRequest.id == request_id, *_own(owner)))
    if record is None:
        raise NotFoundError("Request", request_id)
    return record


def list_requests(session: Session, *, owner: ApiKey, query: RequestListQuery) -> RequestsPublic:
    """A page of `owner`'s requests; see `RequestListQuery` for sorting, search and filters.

    Raises:
        InvalidInputError: a bad `sort` or `filter`.
    """
    count, rows = fetch_page(session, listing=REQUEST_LISTING, query=query, where=_own(owner))
    return RequestsPublic(
        count=count, page=query.page, page_size=query.page_size, results=[describe_request(r) for r in rows]
    )


def cancel_request(session: Session, *, owner: ApiKey, request_id: str) -> RequestPublic:
    """Ends a queued or started request as failed, with `CANCELLED_MESSAGE`; the worker running it stops at
    its next progress report and keeps nothing.

    Raises:
        NotFoundError: no such request for this key.
        ConflictError: the request already finished or failed.
    """
    record = get_request(session, owner=owner, request_id=request_id)
    now = utc_now()
    # Conditional, so a worker finishing it at the same moment either wins or loses, never both.
    cancelled = session.scalar(
        update(BackgroundRequest)
        .where(BackgroundRequest.id == record.id, BackgroundRequest.status.in_(_ACTIVE))
        .values(status="failed", message=CANCELLED_MESSAGE, updated_at=now, finished_at=now)
        .returning(BackgroundRequest.id)
    )
    session.commit()
    session.refresh(record)
    if cancelled is None:
        raise ConflictError(
            f"Request {request_id} is already {record.status}; only a queued or started one can be cancelled."
        )
    return describe_request(record)


def describe_request(record: BackgroundRequest) -> RequestPublic:
    """The API view of a request, with CVAT's field names."""
    file_id = record.result_file_id if record.status == "finished" else None
    made_task = record.operation == "import:backup" and record.status == "finished"
    dataset = record.parameters.get("task_ids")
    return RequestPublic(
        id=record.id,
        status=record.status,  # type: ignore[arg-type]  # REQUEST_STATUSES
        progress=record.progress,
        message=record.message,
        operation=RequestOperationPublic(
            type=record.operation,  # type: ignore[arg-type]  # the routes make only these
            target="dataset" if dataset is not None else "task",
            task_id=record.task_id,
            task_ids=dataset,
            format=record.format,
        ),
        result_url=None if file_id is None else f"/v1/files/{file_id}/content",
        result_id=record.task_id if made_task else file_id,
        render_task_id=record.parameters.get("render_task_id"),
        created_at=record.created_at,
        finished_at=record.finished_at,
        expires_at=record.expires_at,
    )


def _own(owner: ApiKey) -> list[ColumnElement[bool]]:
    return [BackgroundRequest.owner_id == owner.id, BackgroundRequest.expires_at > utc_now()]
