"""The `/v1` operations: a stored file (or another task's output) in, generated files out.

`anonymize` writes the obscured photo or video under the input's name and `<name>.json` with the
detections (`veil.detections/1`); `detect` writes the JSON only; `render` obscures the boxes of the document
file its parameters name (`detections_file`), with no detection, and writes both like `anonymize`. Outputs
of attempt N live under `<owner>/<task>/<N>/`, staged and committed whole, so an attempt that died leaves
nothing a client can see, and the next attempt starts by deleting whatever an earlier one left. The engine
reads and writes local files: an input in S3 storage is downloaded to the attempt's scratch folder first
(`veil.worker.scratch`), which goes when the attempt ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session

from veil.core.database.models import StoredFile, Task, utc_now
from veil.core.errors import UnsupportedMediaTypeError
from veil.core.probing.content import SNIFF_BYTES, media_properties, sniff_media_type
from veil.core.services.files import safe_filename
from veil.core.services.tasks import find_output_media
from veil.core.storage import Storage
from veil.engine.anonymizer import Progress
from veil.engine.media.kinds import media_kind
from veil.engine.report import Report
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import Claim, Finished, InputNotReadyError, TaskFailure, Ticker, Usage
from veil.worker.processors import file_processor
from veil.worker.scratch import attempt_folder
from veil.worker.segments import split_long_videos

__all__ = ["JSON_TYPE", "run_v1_task"]

JSON_TYPE = "application/json"

# The suffix the engine recognises for each type the server accepts (the engine picks readers by name).
_SUFFIXES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/3gpp": ".3gp",
    "video/x-matroska": ".mkv",
    "video/webm": ".webm",
    "video/x-msvideo": ".avi",
    "video/mp2t": ".ts",
    "video/mpeg": ".mpg",
    "video/x-flv": ".flv",
    "video/x-ms-asf": ".wmv",
}

Process = Callable[[Path, Path | None, Progress], Report]
"""Runs an operation: (input, output media or None, progress) -> the report."""


def run_v1_task(context: WorkerContext, claim: Claim, ticker: Ticker) -> Finished:
    """Runs an anonymize, detect or render task on its input file.

    Raises:
        InputNotReadyError: the input task has not finished yet.
        TaskFailure: the input is gone or its task did not complete, or a render task's detections are
            for the other kind of media.
        InvalidParametersError: the stored parameters no longer validate.
        VeilError: the engine could not process the input or write the output.
    """
    source = _input_file(context, claim)
    write_media, process = _operation(context, claim)
    ticker.check()
    storage = context.storage
    storage.delete_tree(f"{claim.owner_id}/{claim.task_id}")  # whatever earlier attempts left
    prefix = f"{claim.owner_id}/{claim.task_id}/{claim.attempt}"
    name = _output_name(source)
    try:
        media_key = f"{prefix}/{name}" if write_media else None
        with (
            attempt_folder(context.settings, claim) as scratch,
            _engine_input(storage, source, scratch, name) as input_path,
        ):
            report = process(
                input_path,
                None if media_key is None else storage.staging_path(media_key),
                lambda done, total: ticker.progress(done / total if total else 0.0),
            )
        ticker.check()
        files = _store_outputs(context, claim, report, media_key, f"{prefix}/{name}.json")
    except BaseException:
        storage.delete_tree(prefix)
        raise
    frames = report.media.frame_count or 0
    return Finished(
        result={"detections": report.counts_by_label(), "frames": max(frames, 1)},
        usage=Usage(files=1, bytes=source.size, frames=frames if report.media.type == "video" else 0),
        files=files,
        discard=lambda: storage.delete_tree(prefix),
    )


def _operation(context: WorkerContext, claim: Claim) -> tuple[bool, Process]:
    """Whether the operation writes media, and how it runs: the cached detectors, or for `render` the
    given boxes and no detectors at all; a long video in segments over every worker."""
    write_media, processor = file_processor(context, claim.operation, claim.parameters, claim.owner_id)
    return write_media, split_long_videos(context, claim, processor).process_file


def _input_file(context: WorkerContext, claim: Claim) -> StoredFile:
    with context.sessions() as session:
        if "task" in claim.input:
            found = _task_output(session, claim, str(claim.input["task"]))
        else:
            found = _uploaded(session, claim, str(claim.input.get("file")))
    if not context.storage.exists(found.storage_key):
        raise TaskFailure("Input not found", f"the content of file {found.id} is missing from storage")
    return found


def _uploaded(session: Session, claim: Claim, file_id: str) -> StoredFile:
    found = session.get(StoredFile, file_id)
    if found is None or found.owner_id != claim.owner_id:
        raise TaskFailure("Input not found", f"file {file_id} no longer exists (deleted or expired)")
    return found


def _task_output(session: Session, claim: Claim, input_task_id: str) -> StoredFile:
    """The photo or video that task `input_task_id` generated."""
    source = session.get(Task, input_task_id)
    if source is None or source.owner_id != claim.owner_id:
        raise TaskFailure("Input not found", f"task {input_task_id} does not exist")
    if source.status in ("queued", "started"):
        raise InputNotReadyError(claim.task_id, input_task_id)
    if source.status != "completed":
        raise TaskFailure(
            "Input task did not complete", f"input task {input_task_id} {source.status}; nothing to process"
        )
    media = find_output_media(session, task_id=input_task_id)
    if media is None:
        raise TaskFailure("Input not found", f"task {input_task_id} has no photo or video output (any more)")
    return media


def _output_name(source: StoredFile) -> str:
    """The input's name made safe, with a suffix the engine reads as the right kind of media."""
    name = safe_filename(source.name)
    suffix = _SUFFIXES.get(source.media_type)
    if suffix is not None and media_kind(Path(name)) != media_kind(Path(f"file{suffix}")):
        name += suffix
    return name


@contextmanager
def _engine_input(storage: Storage, source: StoredFile, scratch: Path, name: str) -> Iterator[Path]:
    """The input as a local file (see `Storage.local_copy`) for the block's duration, or a link to it in
    `scratch` under `name`'s suffix when the stored name tells the engine another kind (or none)."""
    with storage.local_copy(source.storage_key, scratch) as stored:
        if media_kind(stored) == media_kind(Path(name)):
            yield stored
            return
        link = scratch / f".input{Path(name).suffix}"
        os.symlink(stored, link)
        yield link


def _store_outputs(
    context: WorkerContext, claim: Claim, report: Report, media_key: str | None, json_key: str
) -> list[StoredFile]:
    """Writes the JSON, stores it and the staged media under their keys, and returns their rows (not yet
    added), read from the staged files."""
    storage = context.storage
    staged_json = storage.staging_path(json_key)
    staged_json.write_text(report.to_json() + "\n", encoding="utf-8")
    expires_at = utc_now() + timedelta(seconds=context.settings.file_lifespan_s)
    rows = [_row(claim, json_key, staged_json, JSON_TYPE, expires_at)]
    storage.commit(staged_json, json_key)
    if media_key is not None:
        staged = storage.staging_path(media_key)
        rows.insert(0, _row(claim, media_key, staged, _sniff(staged), expires_at))
        storage.commit(staged, media_key)
    return rows


def _row(claim: Claim, key: str, staged: Path, media_type: str, expires_at: datetime) -> StoredFile:
    size = staged.stat().st_size
    return StoredFile(
        owner_id=claim.owner_id,
        name=PurePosixPath(key).name,
        media_type=media_type,
        size=size,
        properties={"size": size} if media_type == JSON_TYPE else media_properties(staged, media_type),
        storage_key=key,
        task_id=claim.task_id,
        expires_at=expires_at,
    )


def _sniff(path: Path) -> str:
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
    try:
        return sniff_media_type(head)
    except UnsupportedMediaTypeError:  # the engine wrote it, so this means a type the sniffer lacks
        return "application/octet-stream"
