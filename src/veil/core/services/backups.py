"""Backups of `/v1` tasks (`export:backup`, `import:backup` requests): one zip with everything a task is, to
restore it on another Veil server, under new ids.

The zip holds `manifest.json` (`{"schema": "veil.backup/1", "veil_version", "created_at"}`), `task.json`
(operation, parameters, status, progress, result, error, times and the list of files), and the files:
`input/<name>` (the photo or video it worked on; for a task chained on another, that task's output),
`document/<name>` (a render task's document) and `generated/<name>` (its outputs, the detections JSON
among them). A backup read back is checked as an upload is: member names and sizes (`SafeZip`), the
manifest's schema, each file's content typed from its bytes, never from the names in the zip.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.core.database.ids import new_id
from veil.core.database.models import FINAL_STATUSES, ApiKey, StoredFile, Task, utc_now
from veil.core.errors import ConflictError, MediaRefusedError, UnreadableInputError
from veil.core.probing.content import SNIFF_BYTES, inspect_upload, sniff_media_type
from veil.core.queue import MediaKind, route
from veil.core.safety.zips import SafeZip
from veil.core.schemas import DocumentSummary, Operation
from veil.core.services.documents import DOCUMENT_TYPE, MAX_DOCUMENT_BYTES
from veil.core.services.files import safe_filename
from veil.core.services.tasks import find_output_media
from veil.core.settings import Settings
from veil.core.storage import Storage

__all__ = ["BACKUP_SCHEMA", "Restored", "check_backup_possible", "restore_backup", "write_backup"]

BACKUP_SCHEMA = "veil.backup/1"

Role = Literal["input", "document", "generated"]
Progress = Callable[[float], None]
_MAX_MANIFEST_BYTES = 1024 * 1024
_SUMMARY_FIELDS = tuple(name for name in DocumentSummary.model_fields if name != "file_id")


class _Manifest(BaseModel):
    schema_: Literal["veil.backup/1"] = Field(alias="schema")
    veil_version: str
    created_at: datetime


class _BackupFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str = Field(min_length=1, max_length=255)
    # A generated render document (annotations imported into the task), which a render task may name once
    # restored; it is checked whole again then, as an upload is. The worker's own report is not one.
    render_document: bool = False


class _BackupTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: Operation
    parameters: dict[str, Any]
    input_name: str | None
    status: Literal["completed", "failed", "cancelled"]
    progress: float
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    files: list[_BackupFile]


@dataclass(frozen=True)
class Restored:
    """A restored task: its row and its files' rows (added to the session, not committed), and the storage
    keys written, to delete when the rows are not committed."""

    task: Task
    keys: list[str]


def check_backup_possible(task: Task) -> None:
    """Raises ConflictError when `task` is not finished: a backup holds a task that no longer changes."""
    if task.status not in FINAL_STATUSES:
        raise ConflictError(f"Task {task.id} is {task.status}; back it up once it has finished.")


def write_backup(session: Session, storage: Storage, *, task: Task, target: Path, progress: Progress) -> None:
    """Writes the backup of `task` to the new local file `target`.

    Raises:
        ConflictError: the task has not finished, or its input has expired (a backup needs it).
    """
    check_backup_possible(task)
    files = _task_files(session, task)
    described = [
        {
            "role": role,
            "name": record.name,
            "render_document": role == "generated" and _is_render_document(record),
        }
        for role, record in files
    ]
    manifest = {"schema": BACKUP_SCHEMA, "veil_version": version("veil"), "created_at": utc_now().isoformat()}
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2), zipfile.ZIP_DEFLATED)
        archive.writestr("task.json", json.dumps(_task_json(task, described), indent=2), zipfile.ZIP_DEFLATED)
        for done, (role, record) in enumerate(files, start=1):
            # Photos and videos are compressed already; JSON shrinks tenfold.
            info = zipfile.ZipInfo(f"{role}/{record.name}", _zip_time(record.created_at))
            info.compress_type = (
                zipfile.ZIP_DEFLATED if record.media_type == DOCUMENT_TYPE else zipfile.ZIP_STORED
            )
            with (
                storage.open(record.storage_key) as source,
                archive.open(info, "w", force_zip64=True) as member,
            ):
                shutil.copyfileobj(source, member, 1024 * 1024)
            progress(done / len(files))


def restore_backup(
    session: Session,
    storage: Storage,
    *,
    settings: Settings,
    owner: ApiKey,
    archive: Path,
) -> Restored:
    """Stores the files of the backup at `archive` and adds its task and file rows for `owner` to the
    session, under new ids (the caller commits, or deletes `Restored.keys` when it does not).

    Raises:
        UnreadableInputError: not a Veil backup, an oversized zip, or a file whose content is not what
            its place in the backup says; the message says which. Nothing is left stored.
        UnsafeArchiveError: a member named outside its folder, a link, or a zip bomb.
    """
    keys: list[str] = []
    try:
        with SafeZip(archive, max_bytes=3 * settings.max_upload_bytes) as backup:
            described = _read_task(backup)
            task = _restore(session, storage, backup, described, settings, owner, keys)
    except BaseException:
        for key in keys:
            storage.delete(key)
        raise
    return Restored(task=task, keys=keys)


def _task_files(session: Session, task: Task) -> list[tuple[Role, StoredFile]]:
    """The input, the render document (if any) and the generated files of `task`, oldest first."""
    if "task" in task.input:
        source = find_output_media(session, task_id=str(task.input["task"]))
    else:
        source = session.get(StoredFile, str(task.input.get("file")))
    if source is None or (source.expires_at is not None and source.expires_at <= utc_now()):
        raise ConflictError(f"The input of task {task.id} has expired; a backup needs it.")
    files: list[tuple[Role, StoredFile]] = [("input", source)]
    document_id = task.parameters.get("detections_file")
    document = None if document_id is None else session.get(StoredFile, str(document_id))
    if document is not None:
        files.append(("document", document))
    generated = session.scalars(
        select(StoredFile).where(StoredFile.task_id == task.id).order_by(StoredFile.created_at, StoredFile.id)
    )
    files.extend(("generated", record) for record in generated)
    return files


def _task_json(task: Task, files: list[dict[str, Any]]) -> dict[str, Any]:
    parameters = {name: value for name, value in task.parameters.items() if name != "detections_file"}
    times = {
        name: _iso(getattr(task, name)) for name in ("created_at", "updated_at", "started_at", "finished_at")
    }
    return {
        "operation": task.operation,
        "parameters": parameters,
        "input_name": task.input.get("name"),
        "status": task.status,
        "progress": task.progress,
        "result": task.result,
        "error": task.error,
        **times,
        "files": files,
    }


def _read_task(backup: SafeZip) -> _BackupTask:
    try:
        _Manifest.model_validate_json(backup.read("manifest.json", _MAX_MANIFEST_BYTES))
        described = _BackupTask.model_validate_json(backup.read("task.json", _MAX_MANIFEST_BYTES))
    except ValidationError as exc:
        place = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise UnreadableInputError(
            f"The file is not a Veil backup ({BACKUP_SCHEMA}): {place}: {exc.errors()[0]['msg']}."
        ) from exc
    roles = [file.role for file in described.files]
    if roles.count("input") != 1 or roles.count("document") > 1:
        raise UnreadableInputError("The backup must list one input file and at most one document.")
    for file in described.files:
        if safe_filename(file.name) != file.name:
            raise UnreadableInputError(f"The backup names a file {file.name!r}; names may not hold folders.")
    return described


def _restore(
    session: Session,
    storage: Storage,
    backup: SafeZip,
    described: _BackupTask,
    settings: Settings,
    owner: ApiKey,
    keys: list[str],
) -> Task:
    task_id = new_id("task")
    expires_at = utc_now() + timedelta(seconds=settings.file_lifespan_s)
    rows: dict[Role, list[StoredFile]] = {"input": [], "document": [], "generated": []}
    for file in described.files:
        file_id = new_id("file")
        key = (
            f"{owner.id}/{task_id}/1/{file.name}"
            if file.role == "generated"
            else f"{owner.id}/{file_id}/{file.name}"
        )
        staged = storage.staging_path(key)
        backup.extract(f"{file.role}/{file.name}", staged)
        try:
            media_type, properties = _check_content(staged, file)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        keys.append(key)
        storage.commit(staged, key)
        record = StoredFile(
            id=file_id,
            owner_id=owner.id,
            name=file.name,
            media_type=media_type,
            size=properties["size"],
            properties=properties,
            storage_key=key,
            # In the backup's order, one after another: a task's latest document is its corrections.
            created_at=utc_now(),
            expires_at=expires_at,
        )
        rows[file.role].append(record)
    task = _task_row(described, task_id, owner, rows)
    session.add_all([*rows["input"], *rows["document"], task])
    session.flush()  # the task before the files that name it
    for record in rows["generated"]:
        record.task_id = task_id
    session.add_all(rows["generated"])
    return task


def _task_row(
    described: _BackupTask, task_id: str, owner: ApiKey, rows: dict[Role, list[StoredFile]]
) -> Task:
    (source,) = rows["input"]
    task_input: dict[str, Any] = {"file": source.id}
    if described.input_name is not None:
        task_input["name"] = described.input_name
    parameters = dict(described.parameters)
    for document in rows["document"]:
        parameters["detections_file"] = document.id
        task_input["document"] = {
            "file_id": document.id,
            **{n: document.properties[n] for n in _SUMMARY_FIELDS},
        }
    kind: MediaKind = "video" if source.media_type.startswith("video/") else "photo"
    return Task(
        id=task_id,
        owner_id=owner.id,
        api="v1",
        operation=described.operation,
        parameters=parameters,
        input=task_input,
        status=described.status,
        queue=route(kind, str(parameters.get("device", "any"))),
        progress=described.progress,
        result=described.result,
        error=described.error,
        created_at=described.created_at,
        updated_at=described.updated_at,
        started_at=described.started_at,
        finished_at=described.finished_at,
    )


def _is_render_document(record: StoredFile) -> bool:
    """A stored JSON file checked as a render document (its summary is in its properties)."""
    return record.media_type == DOCUMENT_TYPE and "boxes" in record.properties


def _check_content(path: Path, file: _BackupFile) -> tuple[str, dict[str, Any]]:
    """The type and properties of a restored file, from its bytes, as an upload's are found.

    Raises:
        UnreadableInputError: the content does not fit its place (an input that is no photo or video, a
            document that is no render document, a generated file that is neither).
    """
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    try:
        media_type = sniff_media_type(head)
        expected = {"input": media_type != DOCUMENT_TYPE, "document": media_type == DOCUMENT_TYPE}
        if not expected.get(file.role, True):
            raise UnreadableInputError(f"The backup's {file.role} file {path.name} is of type {media_type}.")
        if file.role == "generated" and media_type == DOCUMENT_TYPE and not file.render_document:
            return media_type, {"size": _json_size(path)}
        return media_type, inspect_upload(path, media_type)
    except MediaRefusedError as exc:
        raise UnreadableInputError(f"The backup's {file.role} file {path.name} is refused: {exc}") from exc


def _json_size(path: Path) -> int:
    size = path.stat().st_size
    try:
        if size > 4 * MAX_DOCUMENT_BYTES:
            raise ValueError(f"larger than {4 * MAX_DOCUMENT_BYTES} bytes")
        json.loads(path.read_bytes())
    except ValueError as exc:
        raise UnreadableInputError(
            f"The backup's generated file {path.name} is no JSON document: {exc}"
        ) from exc
    return size


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    return (max(moment.year, 1980), moment.month, moment.day, moment.hour, moment.minute, moment.second)
