"""The annotation requests a worker runs (`veil.core.services.task_annotations` checked them when asked):
a task's detections exported in a format, with or without its images, and annotations imported back as a
corrected document stored with the task, optionally rendered by a new render task on the original media."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from veil.core.database.ids import new_id
from veil.core.database.models import StoredFile, Task
from veil.core.errors import MediaRefusedError, ServiceError, UnreadableInputError
from veil.core.parameters import OutputParameters
from veil.core.probing.content import inspect_upload
from veil.core.schemas import TaskCreate
from veil.core.services.documents import DOCUMENT_TYPE
from veil.core.services.task_annotations import dataset_media, original_file, task_report
from veil.core.services.tasks import add_task
from veil.core.storage import Storage
from veil.engine.annotations import MediaFiles, export_annotations, import_annotations
from veil.engine.report import Report

if TYPE_CHECKING:
    from veil.worker.requests import Run

__all__ = ["export_task_annotations", "import_task_annotations"]

log = logging.getLogger(__name__)


def export_task_annotations(run: Run) -> None:
    """`export:dataset` and `export:annotations`: a zip in the request's format, of one task, or of a
    dataset's tasks each under a folder named by its id."""
    request, storage = run.request, run.context.storage
    tasks = _exported_tasks(run)
    documents = [_report(run, task) for task in tasks]
    stem = PurePosixPath(documents[0][0]).stem
    if request.task_id is None:  # a dataset: task ids keep apart media of the same name
        documents = [(f"{t.id}/{name}", report) for t, (name, report) in zip(tasks, documents, strict=True)]
        stem = "dataset"
    format_slug = "".join(c if c.isalnum() else "-" for c in str(request.format)).strip("-").lower()
    key = f"{request.owner_id}/{request.id}/{stem}-{format_slug}.zip"
    staged = storage.staging_path(key)
    images = None
    if request.parameters.get("save_images"):
        owner, media = run.owner(), request.parameters["media"]
        keys = {
            name: dataset_media(run.session, owner=owner, task=task, media=media).storage_key
            for task, (name, _) in zip(tasks, documents, strict=True)
        }
        images = _StoredMedia(storage, keys, run.scratch)
    export_annotations(
        documents,
        str(request.format),
        staged,
        images=images,
        frame_step=int(request.parameters.get("frame_step", 1)),
        progress=lambda done, total: run.progress(done / total if total else 0.0),
    )
    run.store_result(staged, key, "application/zip")


class _StoredMedia:
    """An `ImageSource` over stored photos and videos (document name -> storage key), fetched one at a
    time: on S3 a dataset's videos are never all on the local disk together."""

    def __init__(self, storage: Storage, keys: dict[str, str], scratch: Path) -> None:
        self.storage, self.keys, self.folder = storage, keys, scratch / "media"

    def images(
        self, document: str, kind: Literal["image", "video"], frames: Sequence[int]
    ) -> Iterator[tuple[int, bytes]]:
        self.folder.mkdir(exist_ok=True)
        with self.storage.local_copy(self.keys[document], self.folder) as path:
            yield from MediaFiles({document: path}).images(document, kind, frames)


def import_task_annotations(run: Run) -> None:
    """`import:annotations`: the uploaded file read against the task's media, stored as a render document
    of the task; with `render`, a render task on the original is started once the request finished."""
    request, storage = run.request, run.context.storage
    task = run.task()
    name, report = _report(run, task)
    with storage.local_copy(str(request.parameters["input_key"]), run.scratch) as source:
        corrected = import_annotations(
            source, str(request.format), [(name, report.media)], run.context.settings.max_upload_bytes
        )[name]
    file_id = new_id("file")
    key = f"{request.owner_id}/{file_id}/{PurePosixPath(name).stem}.corrected.json"
    staged = storage.staging_path(key)
    staged.write_text(corrected.to_json() + "\n", encoding="utf-8")
    try:
        properties = inspect_upload(staged, DOCUMENT_TYPE)
    except MediaRefusedError as exc:
        staged.unlink()
        raise UnreadableInputError(f"The imported annotations are no render document: {exc}") from exc
    run.store_result(staged, key, DOCUMENT_TYPE, file_id=file_id, task_id=task.id, properties=properties)
    if request.parameters.get("render"):
        _add_render(run, task, file_id)


def _exported_tasks(run: Run) -> list[Task]:
    """The request's task, or its dataset's tasks in the order asked (tasks are never deleted)."""
    if run.request.task_id is not None:
        return [run.task()]
    return [run.session.get_one(Task, task_id) for task_id in run.request.parameters["task_ids"]]


def _report(run: Run, task: Task) -> tuple[str, Report]:
    """The task's detections report and the name of its media ("photo.png")."""
    record = task_report(run.session, task=task)
    return record.name.removesuffix(".json"), _read_report(run.context.storage, record)


def _read_report(storage: Storage, record: StoredFile) -> Report:
    with storage.open(record.storage_key) as file:
        return Report.from_dict(json.loads(file.read()))


def _add_render(run: Run, task: Task, document_id: str) -> None:
    """Adds the render task of an import, with the task's own obscuring options, to the run's transaction
    and names it in the request (`render_task_id`), so the request reads finished only with it; a render
    that cannot start is said in the request's message."""
    options = {n: v for n, v in task.parameters.items() if n in OutputParameters.model_fields}
    body = TaskCreate(
        operation="render",
        input=str(original_file(run.session, task=task)),
        parameters={**options, "detections_file": document_id},
    )
    context = run.context
    try:
        created = add_task(
            run.session, owner=run.owner(), settings=context.settings, storage=context.storage, request=body
        )
    except ServiceError as exc:
        log.info("request %s: the render task could not start: %s", run.request.id, exc)
        run.finished_with["message"] = f"The annotations are stored; the render task did not start: {exc}"
        return
    run.finished_with["parameters"] = {**run.request.parameters, "render_task_id": created.id}
    run.after.append(lambda: context.queue.enqueue(created.id, created.queue))
