"""Files of the `/v1` API: store an upload, find, list and delete files, within what the caller's key sees.

A key sees its own files (an admin key sees all); another key's file, or one past its `expires_at`, is
not found. Uploads are typed from their content and streamed to storage without being held in memory.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from sqlalchemy import ColumnElement, bindparam, or_, select
from sqlalchemy.orm import Session

from veil.core.database.ids import new_id
from veil.core.database.listing import Listing, fetch_page, visible_to
from veil.core.database.models import ApiKey, StoredFile, Task, Upload, utc_now
from veil.core.errors import ConflictError, NotFoundError
from veil.core.probing.content import SNIFF_BYTES, inspect_upload, sniff_media_type, upload_limit
from veil.core.schemas import FileListQuery, FileProperties, FilePublic, FilesPublic
from veil.core.services.documents import DOCUMENT_TYPE
from veil.core.settings import Settings
from veil.core.storage import Storage
from veil.core.storage.base import write_stream

__all__ = [
    "FILE_LISTING",
    "delete_file",
    "file_public",
    "get_file",
    "get_own_file",
    "list_files",
    "safe_filename",
    "store_document",
    "store_stored_bytes",
    "store_upload",
]

FILE_LISTING = Listing(
    model=StoredFile,
    fields={
        "id": StoredFile.id,
        "name": StoredFile.name,
        "type": StoredFile.media_type,
        "size": StoredFile.size,
        "task_id": StoredFile.task_id,
        "created_at": StoredFile.created_at,
        "expires_at": StoredFile.expires_at,
    },
    search_fields=("id", "name", "type"),
)

# One unexpired file by id: a key's own, or any (for admin keys). Built once: building a statement costs
# SQLAlchemy more than running it, and tasks and file views read a file by id on every request.
_UNEXPIRED_AT = or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > bindparam("now"))
_ANY_FILE = select(StoredFile).where(StoredFile.id == bindparam("file_id"), _UNEXPIRED_AT)
_OWN_FILE = _ANY_FILE.where(StoredFile.owner_id == bindparam("owner_id"))

_MAX_NAME_BYTES = 150
_ACTIVE_STATUSES = ("queued", "started")


def safe_filename(name: str | None) -> str:
    """The last part of a client's file name, without control characters and at most 150 bytes of UTF-8
    (file systems allow 255, and storage adds a temporary prefix and suffix while writing); the extension
    is kept. "upload" when nothing usable is left."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name  # drops both "/" and "\\" paths
    base = "".join(char for char in base if unicodedata.category(char)[0] != "C").strip()
    if base in ("", ".", ".."):
        return "upload"
    if len(base.encode()) <= _MAX_NAME_BYTES:
        return base
    path = PurePosixPath(base)
    suffix = path.suffix if len(path.suffix.encode()) <= 16 else ""
    budget = _MAX_NAME_BYTES - len(suffix.encode())
    return base[: len(base) - len(suffix)].encode()[:budget].decode(errors="ignore") + suffix


async def store_upload(
    session: Session,
    *,
    storage: Storage,
    settings: Settings,
    owner: ApiKey,
    filename: str | None,
    chunks: AsyncIterator[bytes],
) -> FilePublic:
    """Streams an upload to storage and records it; the type is told from the first bytes, so content
    Veil cannot process is refused before anything is written, and the headers once it is stored.

    Raises:
        UnsupportedMediaTypeError: the content is no photo or video Veil handles.
        UnprocessableMediaError: a photo or video no worker could process (see `inspect_upload`); nothing
            is kept.
        UploadTooLargeError: more than `settings.max_upload_bytes` arrived, or for a render document more
            than `MAX_DOCUMENT_BYTES` (nothing is kept).
        StorageFullError: the disk is full (nothing is kept).
        StorageUnavailableError: S3 storage failed (nothing is kept).
    """
    head, chunks = await _peek(chunks, SNIFF_BYTES)
    record = _new_upload(owner=owner, filename=filename, media_type=sniff_media_type(head), settings=settings)
    limit = upload_limit(record.media_type, settings.max_upload_bytes)
    with _staged(storage, record.storage_key) as staged:
        record.size = await write_stream(staged, chunks, limit)
        # Reading headers, uploading to S3 and waiting for SQLite's write lock all block; keep them off
        # the event loop.
        await asyncio.to_thread(_record_upload, session, storage, record, staged)
    return file_public(record)


def store_stored_bytes(
    session: Session, *, storage: Storage, settings: Settings, owner: ApiKey, upload: Upload
) -> FilePublic:
    """Records the bytes of `upload` (a finished resumable upload) as an uploaded file, exactly as
    `store_upload` would: typed from the first bytes, then checked and stored under the file's own key
    (on local disk they are linked, not copied). The file and the upload's offset and link to it are
    committed at once, and only then are the appended bytes deleted: a process killed on the way leaves
    the upload whole, and the client's last request sent again finishes it, under the same key (the file
    is named after the upload), so what the killed process stored is replaced, not left beside it.
    Blocking; call it in a thread from async code.

    Raises:
        UnsupportedMediaTypeError: the content is no photo or video Veil handles (the appended bytes are
            kept; the caller decides what to do with them).
        UnprocessableMediaError: a photo or video no worker could process (see `inspect_upload`).
    """
    head = storage.read_appended(upload.storage_key, SNIFF_BYTES)
    media_type = sniff_media_type(head)
    file_id = upload.id.replace("upload_", "file_", 1)
    record = _new_upload(
        owner=owner, filename=upload.filename, media_type=media_type, settings=settings, file_id=file_id
    )
    with _staged(storage, record.storage_key) as staged:
        storage.take_appended(upload.storage_key, upload.length, staged)
        record.size = staged.stat().st_size
        upload.file_id = record.id
        _record_upload(session, storage, record, staged)
    storage.delete(upload.storage_key)
    return file_public(record)


def store_document(
    session: Session,
    *,
    storage: Storage,
    settings: Settings,
    owner: ApiKey,
    data: bytes,
    summary: dict[str, Any],
) -> StoredFile:
    """Records a render document given inline in a request as an uploaded file named `detections.json`,
    with its summary as properties (the caller checked it). The session is left to commit with the task
    that names it."""
    record = _new_upload(owner=owner, filename="detections.json", media_type=DOCUMENT_TYPE, settings=settings)
    staged = storage.staging_path(record.storage_key)
    staged.write_bytes(data)
    storage.commit(staged, record.storage_key)
    record.size, record.properties = len(data), {"size": len(data), **summary}
    session.add(record)
    return record


def _new_upload(
    *, owner: ApiKey, filename: str | None, media_type: str, settings: Settings, file_id: str | None = None
) -> StoredFile:
    """The record of an upload about to be written: id (`file_id`, or a new one), safe name, storage key
    and expiry (size to set)."""
    file_id, name = file_id or new_id("file"), safe_filename(filename)
    return StoredFile(
        id=file_id,
        owner_id=owner.id,
        name=name,
        media_type=media_type,
        size=0,
        storage_key=f"{owner.id}/{file_id}/{name}",
        expires_at=utc_now() + timedelta(seconds=settings.file_lifespan_s),
    )


@contextmanager
def _staged(storage: Storage, key: str) -> Iterator[Path]:
    """Where to make the file for `key`; a failure before the block ends leaves nothing of it behind,
    staged or stored (the caller records the file last)."""
    staged = storage.staging_path(key)
    try:
        yield staged
    except BaseException:
        staged.unlink(missing_ok=True)
        storage.delete(key)
        raise


def _record_upload(session: Session, storage: Storage, record: StoredFile, staged: Path) -> None:
    """Checks the upload staged at `staged`, stores it under its key and records it."""
    record.properties = inspect_upload(staged, record.media_type)
    storage.commit(staged, record.storage_key)
    session.add(record)
    session.commit()


async def _peek(chunks: AsyncIterator[bytes], size: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first `size` bytes (fewer when the stream is shorter), and the whole stream again."""
    buffered: list[bytes] = []
    received = 0
    async for chunk in chunks:
        buffered.append(chunk)
        received += len(chunk)
        if received >= size:
            break

    async def replay() -> AsyncIterator[bytes]:
        for chunk in buffered:
            yield chunk
        async for chunk in chunks:
            yield chunk

    return b"".join(buffered)[:size], replay()


def get_file(session: Session, *, owner: ApiKey, file_id: str) -> StoredFile:
    """The file `file_id` if `owner` may see it and it has not expired.

    Raises:
        NotFoundError: no such file for this key.
    """
    query = _ANY_FILE if owner.is_admin else _OWN_FILE
    record = session.scalar(query, _by_id(owner, file_id))
    if record is None:
        raise NotFoundError("File", file_id)
    return record


def get_own_file(session: Session, *, owner: ApiKey, file_id: str) -> StoredFile:
    """The file `file_id` if it is `owner`'s own (for admin keys too) and has not expired.

    Raises:
        NotFoundError: no such file of this key.
    """
    record = session.scalar(_OWN_FILE, _by_id(owner, file_id))
    if record is None:
        raise NotFoundError("File", file_id)
    return record


def list_files(session: Session, *, owner: ApiKey, query: FileListQuery) -> FilesPublic:
    """A page of the files `owner` sees; see `FileListQuery` for sorting, search and filters.

    Raises:
        InvalidInputError: a bad `sort` or `filter`.
    """
    count, rows = fetch_page(session, listing=FILE_LISTING, query=query, where=_visible(owner))
    return FilesPublic(
        count=count, page=query.page, page_size=query.page_size, results=[file_public(row) for row in rows]
    )


def delete_file(session: Session, *, owner: ApiKey, storage: Storage, file_id: str) -> None:
    """Deletes a file's record and bytes.

    Raises:
        NotFoundError: no such file for this key.
        ConflictError: a queued or running task reads the file.
    """
    record = get_file(session, owner=owner, file_id=file_id)
    reader = session.scalar(select(Task.id).where(Task.status.in_(_ACTIVE_STATUSES), _reads(record)).limit(1))
    if reader is not None:
        raise ConflictError(
            f"File {file_id} is the input of task {reader}, which is not finished; cancel it or wait for it."
        )
    session.delete(record)
    session.commit()
    # The bytes go after the commit: a failed commit keeps the file whole.
    storage.delete(record.storage_key)


def file_public(record: StoredFile) -> FilePublic:
    """The API view of a file record."""
    properties: dict[str, Any] = {**record.properties, "size": record.size}
    return FilePublic(
        id=record.id,
        name=record.name,
        type=record.media_type,
        properties=FileProperties.model_validate(properties),
        task_id=record.task_id,
        created_at=record.created_at,
        expires_at=record.expires_at,
    )


def _by_id(owner: ApiKey, file_id: str) -> dict[str, Any]:
    return {"file_id": file_id, "owner_id": owner.id, "now": utc_now()}


def _visible(owner: ApiKey) -> list[ColumnElement[bool]]:
    return [visible_to(owner, StoredFile.owner_id), _unexpired()]


def _unexpired() -> ColumnElement[bool]:
    return or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > utc_now())


def _reads(record: StoredFile) -> ColumnElement[bool]:
    """Tasks that read `record`: given it as input or as render document, or chained on the task that
    generated it."""
    reads_file = or_(
        Task.input["file"].as_string() == record.id,
        Task.parameters["detections_file"].as_string() == record.id,
    )
    if record.task_id is None:
        return reads_file
    return or_(reads_file, Task.input["task"].as_string() == record.task_id)
