"""A task's detections in the annotation formats (`veil.engine.annotations`), as background requests:
checked here when they are asked for, run by `veil.worker.annotations`.

A task's annotations are its detections report, the `veil.detections/1` JSON its worker generated, under
the name of its media ("photo.png"). A dataset's images are the task's anonymized output, or with
`media="original"` the photo or video it started from (the file a chain of tasks began with), which the
key must still see. An import reads a file against the report's media (size, frames) and stores the
corrected document with the task; with `render` a render task then obscures those boxes on the original.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.core.database.models import ApiKey, BackgroundRequest, StoredFile, Task
from veil.core.errors import ConflictError, InvalidInputError, NotFoundError
from veil.core.schemas import DatasetExport
from veil.core.services.documents import DOCUMENT_TYPE
from veil.core.services.files import get_file
from veil.core.services.requests import (
    RequestInput,
    create_request,
    request_on_task,
    request_queue,
    request_with_input,
)
from veil.core.services.tasks import find_output_media, get_task
from veil.core.settings import Settings
from veil.core.storage import Storage
from veil.engine.annotations import formats

__all__ = [
    "MediaChoice",
    "dataset_media",
    "original_file",
    "request_annotations_import",
    "request_dataset_export",
    "request_export",
    "task_report",
]

MediaChoice = Literal["anonymized", "original"]


def request_export(
    session: Session,
    *,
    owner: ApiKey,
    settings: Settings,
    task_id: str,
    format_name: str,
    save_images: bool,
    media: MediaChoice = "anonymized",
    frame_step: int = 1,
) -> BackgroundRequest:
    """Records an `export:dataset` request (images with `save_images`) or, without images, an
    `export:annotations` one; the caller enqueues it.

    Raises:
        NotFoundError: no such task for this key.
        InvalidInputError: an unknown format, or one that cannot export (`format`).
        ConflictError: the task has not completed, or the media asked for is gone.
    """
    _check_format(format_name, importing=False)
    task = _exportable_task(session, owner=owner, task_id=task_id, save_images=save_images, media=media)
    return request_on_task(
        session,
        owner=owner,
        settings=settings,
        operation=_export_operation(save_images),
        task_id=task.id,
        format_name=format_name,
        parameters={"save_images": save_images, "media": media, "frame_step": frame_step},
    )


def request_dataset_export(
    session: Session, *, owner: ApiKey, settings: Settings, asked: DatasetExport
) -> BackgroundRequest:
    """Records the export of several tasks as one dataset (`export:dataset` with images, else
    `export:annotations`), with no task of its own: the tasks are in its parameters (`task_ids`). The
    caller enqueues it.

    Raises:
        InvalidInputError: an unknown format, or one that cannot export (`format`).
        NotFoundError: a task that is not this key's.
        ConflictError: a task that has not completed, or whose media asked for is gone.
    """
    _check_format(asked.format, importing=False)
    tasks = [
        _exportable_task(
            session, owner=owner, task_id=task_id, save_images=asked.save_images, media=asked.media
        )
        for task_id in asked.task_ids
    ]
    return create_request(
        session,
        owner=owner,
        settings=settings,
        operation=_export_operation(asked.save_images),
        task_id=None,
        format_name=asked.format,
        parameters={
            "task_ids": [task.id for task in tasks],
            "save_images": asked.save_images,
            "media": asked.media,
            "frame_step": asked.frame_step,
        },
        queue=request_queue(tasks),
    )


async def request_annotations_import(
    session: Session,
    *,
    owner: ApiKey,
    settings: Settings,
    storage: Storage,
    task_id: str,
    format_name: str,
    render: bool,
    source: RequestInput,
) -> BackgroundRequest:
    """Stores the annotations file (sent with the request or uploaded before, see `RequestInput`) and
    records an `import:annotations` request; the caller enqueues it.

    Raises:
        NotFoundError: no such task for this key.
        InvalidInputError: an unknown format, or one that cannot import (`format`).
        ConflictError: the task has not completed, or with `render` its original is gone.
        InvalidInputError: (under `upload`) no such upload, or not one for a request, or not complete.
        UploadTooLargeError: more than `settings.max_upload_bytes` arrived (nothing is kept).
    """
    _check_format(format_name, importing=True)
    task = _completed_task(session, owner=owner, task_id=task_id)
    if render:
        dataset_media(session, owner=owner, task=task, media="original")
    return await request_with_input(
        session,
        owner=owner,
        settings=settings,
        storage=storage,
        operation="import:annotations",
        task_id=task.id,
        source=source,
        max_bytes=settings.max_upload_bytes,
        format_name=format_name,
        parameters={"render": render},
    )


def task_report(session: Session, *, task: Task) -> StoredFile:
    """The task's latest detections document: the one its worker generated, or the last corrected one
    imported into it, so an export after an import carries the corrections.

    Raises:
        ConflictError: it has expired or was deleted.
    """
    report = session.scalar(
        select(StoredFile)
        .where(StoredFile.task_id == task.id, StoredFile.media_type == DOCUMENT_TYPE)
        .order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
        .limit(1)
    )
    if report is None:
        raise ConflictError(f"The detections of task {task.id} have expired or were deleted.")
    return report


def original_file(session: Session, *, task: Task) -> str | None:
    """The id of the file the task's chain began with (its own input file, or its input task's, up the
    chain); None when a task on the way is gone."""
    while "file" not in task.input:
        upstream = session.get(Task, str(task.input.get("task")))
        if upstream is None:
            return None
        task = upstream
    return str(task.input["file"])


def dataset_media(session: Session, *, owner: ApiKey, task: Task, media: MediaChoice) -> StoredFile:
    """The photo or video a dataset of `task` shows: its anonymized output, or the original, which `owner`
    must see.

    Raises:
        ConflictError: that media has expired, was deleted, or never was (a detect task has no output).
    """
    if media == "anonymized":
        found = find_output_media(session, task_id=task.id)
        if found is None:
            raise ConflictError(
                f"Task {task.id} has no anonymized photo or video (any more); ask for media=original."
            )
        return found
    file_id = original_file(session, task=task)
    try:
        return get_file(session, owner=owner, file_id=str(file_id))
    except NotFoundError as exc:
        raise ConflictError(
            f"The original photo or video of task {task.id} has expired or was deleted."
        ) from exc


def _exportable_task(
    session: Session, *, owner: ApiKey, task_id: str, save_images: bool, media: MediaChoice
) -> Task:
    task = _completed_task(session, owner=owner, task_id=task_id)
    if save_images:
        dataset_media(session, owner=owner, task=task, media=media)
    return task


def _export_operation(save_images: bool) -> Literal["export:dataset", "export:annotations"]:
    return "export:dataset" if save_images else "export:annotations"


def _completed_task(session: Session, *, owner: ApiKey, task_id: str) -> Task:
    task = get_task(session, owner=owner, task_id=task_id)
    if task.status != "completed":
        raise ConflictError(f"Task {task_id} is {task.status}; its annotations exist once it has completed.")
    return task


def _check_format(name: str, *, importing: bool) -> None:
    usable = [info.name for info in formats() if (info.can_import if importing else info.can_export)]
    if name not in usable:
        doing = "import" if importing else "export"
        known = ", ".join(usable)
        raise InvalidInputError({"format": [f"Veil cannot {doing} {name!r}; the formats are: {known}."]})
