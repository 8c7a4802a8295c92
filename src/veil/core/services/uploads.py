"""Resumable uploads (TUS 1.0.0 core and creation): create an upload, append its bytes in as many requests
as the client needs, and once complete turn them into a stored file exactly as a one-shot upload would.
An upload created with the metadata `purpose request` holds the input of a background request instead (a
backup, annotations: any content): complete, it waits as it is until a request takes it
(`take_request_upload`).

The bytes so far live in storage under `uploads/<owner>/<upload_id>`; the database row records how many
of them are committed (`offset`). A key sees only its own uploads; an expired one is not found.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel, Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from veil.core.database.ids import new_id
from veil.core.database.models import ApiKey, Upload, utc_now
from veil.core.errors import (
    ConflictError,
    InvalidInputError,
    MediaRefusedError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from veil.core.probing.content import SNIFF_BYTES, sniff_media_type
from veil.core.schemas import FilePublic
from veil.core.services.files import file_public, get_file, safe_filename, store_stored_bytes
from veil.core.settings import Settings
from veil.core.storage import Storage, UploadTooLargeError
from veil.core.upload_lock import upload_lock

__all__ = [
    "AppendResult",
    "UploadPublic",
    "append_to_upload",
    "create_upload",
    "describe_upload",
    "get_upload",
    "parse_upload_metadata",
    "take_request_upload",
    "upload_length_limit",
]

PURPOSES = ("file", "request")


class UploadPublic(BaseModel):
    """A resumable upload: bytes received so far of the announced length, and the file once complete."""

    id: str = Field(examples=["upload_avyrvozb9302uwhq"])
    offset: int = Field(description="Bytes received so far.")
    length: int = Field(description="Bytes announced at creation (Upload-Length).")
    filename: str
    file: FilePublic | None = Field(description="The stored file, once the upload is complete.")


@dataclass(frozen=True)
class AppendResult:
    offset: int
    file_id: str | None


def parse_upload_metadata(header: str | None) -> dict[str, str]:
    """TUS `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be left out).

    Raises:
        InvalidInputError: under `Upload-Metadata`, a pair that is not a key and base64 UTF-8 text.
    """
    metadata: dict[str, str] = {}
    for pair in (header or "").split(","):
        if not pair.strip():
            continue
        key, _, encoded = pair.strip().partition(" ")
        try:
            metadata[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            message = f"The value of {key!r} is not base64-encoded UTF-8 text."
            raise InvalidInputError({"Upload-Metadata": [message]}) from exc
    return metadata


def create_upload(
    session: Session,
    *,
    owner: ApiKey,
    settings: Settings,
    length: int,
    filename: str | None,
    purpose: str = "file",
) -> Upload:
    """Records a new, empty upload of `length` bytes, for `purpose` (see the module docstring).

    Raises:
        InvalidInputError: an unknown purpose (under `Upload-Metadata`).
        UploadTooLargeError: `length` is over `upload_length_limit`.
    """
    if purpose not in PURPOSES:
        message = f"The purpose {purpose!r} is unknown; it is one of: {', '.join(PURPOSES)}."
        raise InvalidInputError({"Upload-Metadata": [message]})
    if length > upload_length_limit(settings, purpose):
        raise UploadTooLargeError(f"larger than the limit of {upload_length_limit(settings, purpose)} bytes")
    upload_id = new_id("upload")
    upload = Upload(
        id=upload_id,
        owner_id=owner.id,
        filename=safe_filename(filename),
        length=length,
        offset=0,
        storage_key=f"uploads/{owner.id}/{upload_id}",
        purpose=purpose,
        expires_at=utc_now() + timedelta(seconds=settings.file_lifespan_s),
    )
    session.add(upload)
    session.commit()
    return upload


def upload_length_limit(settings: Settings, purpose: str) -> int:
    """The largest upload for `purpose`: a request's input may be a backup, which holds a task's input
    and output media and its JSON."""
    return settings.max_upload_bytes * (3 if purpose == "request" else 1)


def take_request_upload(
    session: Session, *, storage: Storage, owner: ApiKey, upload_id: str, folder: str
) -> str:
    """Moves the bytes of `owner`'s complete request upload `upload_id` to storage under `folder`, named as
    the upload, and deletes the upload; returns the key. Blocking; call it in a thread from async code.

    Raises:
        InvalidInputError: (under `upload`) no such upload of this key, one made for a file, or one not
            complete.
    """
    try:
        upload = get_upload(session, owner=owner, upload_id=upload_id)
    except NotFoundError as exc:
        raise InvalidInputError({"upload": [str(exc)]}) from exc
    if upload.purpose != "request" or upload.offset < upload.length:
        problem = "was made for a file" if upload.purpose != "request" else "is not complete"
        message = f"Upload {upload_id} {problem}; send the file in a resumable upload with purpose request."
        raise InvalidInputError({"upload": [message]})
    key = f"{folder}/{upload.filename}"
    staged = storage.staging_path(key)
    storage.take_appended(upload.storage_key, upload.length, staged)
    storage.commit(staged, key)
    # Conditional, so of two requests taking the same upload at once only one gets it.
    taken = session.execute(delete(Upload).where(Upload.id == upload.id)).rowcount  # type: ignore[attr-defined]
    session.commit()
    if not taken:
        storage.delete(key)
        raise InvalidInputError({"upload": [f"Upload {upload_id} was taken by another request."]})
    storage.delete(upload.storage_key)
    return key


def get_upload(session: Session, *, owner: ApiKey, upload_id: str) -> Upload:
    """The upload `upload_id` if it is `owner`'s and has not expired (admins see only their own too: an
    upload is work in progress, not a shared resource).

    Raises:
        NotFoundError: no such upload for this key.
    """
    upload = session.scalar(
        select(Upload).where(
            Upload.id == upload_id, Upload.owner_id == owner.id, Upload.expires_at > utc_now()
        )
    )
    if upload is None:
        raise NotFoundError("Upload", upload_id)
    return upload


def describe_upload(session: Session, *, owner: ApiKey, upload: Upload) -> UploadPublic:
    """The API view of an upload, with its stored file while that file lasts."""
    file = None
    if upload.file_id is not None:
        try:
            file = file_public(get_file(session, owner=owner, file_id=upload.file_id))
        except NotFoundError:
            file = None
    return UploadPublic(
        id=upload.id, offset=upload.offset, length=upload.length, filename=upload.filename, file=file
    )


async def append_to_upload(
    session: Session,
    *,
    storage: Storage,
    settings: Settings,
    owner: ApiKey,
    upload_id: str,
    offset: int,
    chunks: AsyncIterator[bytes],
) -> AppendResult:
    """Appends the chunks at `offset`, which must be the upload's current offset, and records how far it
    got (a stream that ends early keeps what arrived, so the client resumes from there). The content is
    typed as soon as its first bytes are in, and when the last byte arrives the upload becomes a stored
    file.

    Raises:
        NotFoundError: no such upload for this key.
        ConflictError: `offset` is not the upload's offset, the upload is complete, or another request is
            appending to it.
        UploadTooLargeError: the chunks go past the announced length (nothing of them is kept).
        UnsupportedMediaTypeError: the content is no photo or video; the upload and its bytes are deleted.
        UnprocessableMediaError: the complete upload is a photo or video no worker could process (too
            many pixels, no video stream, cut short), or a render document that is not valid; the upload
            and its bytes are deleted.
        UploadTooLargeError: also a complete render document over its limit (deleted the same way).
        StorageFullError: the disk is full (nothing of the chunks is kept).
    """
    # Taken before the offset is read, so two requests (of any API process) never append at one offset.
    async with upload_lock(session.get_bind(), upload_id, ttl_s=settings.upload_lock_s):
        upload = await asyncio.to_thread(_get_and_release, session, owner=owner, upload_id=upload_id)
        if upload.offset >= upload.length:
            raise ConflictError(f"Upload {upload_id} is complete; nothing more can be sent.")
        if offset != upload.offset:
            raise ConflictError(
                f"Upload-Offset is {offset}, but upload {upload_id} is at {upload.offset}; send from there."
            )
        written = await storage.append_stream(
            upload.storage_key, chunks, offset=offset, max_bytes=upload.length - offset
        )
        return await asyncio.to_thread(
            _commit_bytes, session, storage=storage, settings=settings, owner=owner, upload=upload,
            previous=offset, written=written,
        )  # fmt: skip


def _get_and_release(session: Session, *, owner: ApiKey, upload_id: str) -> Upload:
    """`get_upload`, then the transaction ends: no database connection is held while the bytes arrive."""
    upload = get_upload(session, owner=owner, upload_id=upload_id)
    session.commit()
    return upload


def _commit_bytes(
    session: Session,
    *,
    storage: Storage,
    settings: Settings,
    owner: ApiKey,
    upload: Upload,
    previous: int,
    written: int,
) -> AppendResult:
    """Records the new offset; types the content once its first bytes are in; finishes a full upload."""
    upload.offset = previous + written
    complete = upload.offset >= upload.length
    if upload.purpose == "request":  # any content; it waits whole for its request
        session.commit()
        return AppendResult(offset=upload.offset, file_id=None)
    if previous < SNIFF_BYTES and (upload.offset >= SNIFF_BYTES or complete):
        try:
            sniff_media_type(storage.read_appended(upload.storage_key, SNIFF_BYTES))
        except UnsupportedMediaTypeError:
            _discard(session, storage, upload)
            raise
    if complete:
        try:
            store_stored_bytes(session, storage=storage, settings=settings, owner=owner, upload=upload)
        except (MediaRefusedError, UploadTooLargeError):
            _discard(session, storage, upload)
            raise
    session.commit()
    return AppendResult(offset=upload.offset, file_id=upload.file_id)


def _discard(session: Session, storage: Storage, upload: Upload) -> None:
    session.delete(upload)
    session.commit()
    storage.delete(upload.storage_key)
