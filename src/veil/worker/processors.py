"""What runs a `/v1` task's operation on one file, or on one segment of a long video: the cached anonymizer
of its detectors, or for `render` a `Renderer` of the boxes in the document its parameters name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from veil.core.database.models import StoredFile
from veil.engine.anonymizer import Progress
from veil.engine.report import Report
from veil.engine.video import FrameRange, VideoOptions
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import TaskFailure
from veil.worker.options import engine_request, render_request

__all__ = ["FileProcessor", "file_processor"]


class FileProcessor(Protocol):
    """`Anonymizer` and `Renderer` alike: one file, or one `FrameRange` of a video, in; its report out."""

    def process_file(
        self,
        source: Path,
        output: Path | None,
        progress: Progress | None = None,
        frames: FrameRange | None = None,
    ) -> Report: ...

    def video_options(self) -> VideoOptions: ...


def file_processor(
    context: WorkerContext, operation: str, parameters: Mapping[str, Any], owner_id: str
) -> tuple[bool, FileProcessor]:
    """Whether the operation writes media, and what runs it on a file of the task's owner `owner_id`.

    Raises:
        InvalidParametersError: the stored parameters or the render document no longer validate.
        TaskFailure: the render document is gone.
    """
    if operation != "render":
        request = engine_request(operation, parameters)
        return request.write_media, context.models.anonymizer(request)
    return True, render_request(parameters, _render_document(context, parameters, owner_id))


def _render_document(context: WorkerContext, parameters: Mapping[str, Any], owner_id: str) -> bytes | None:
    """The bytes of the render document file the task names; None for a task stored before documents were
    files, which carries its document inline."""
    file_id = parameters.get("detections_file")
    if file_id is None:
        return None
    with context.sessions() as session:
        found = session.get(StoredFile, file_id)
    try:
        if found is None or found.owner_id != owner_id:
            raise FileNotFoundError(file_id)
        with context.storage.open(found.storage_key) as document:
            return document.read()
    except FileNotFoundError:
        raise TaskFailure(
            "Input not found", f"the render document, file {file_id}, no longer exists"
        ) from None
