"""Zip archives of task outputs, for `GET /v1/tasks/archive`: written as they are read, never whole in
memory or on disk. Photos and videos are stored as they are (already compressed); JSON is deflated."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from veil.core.database.models import ApiKey, StoredFile, utc_now
from veil.core.errors import ConflictError, NotFoundError
from veil.core.services.tasks import get_task
from veil.core.storage import Storage

__all__ = ["ArchiveMember", "archive_members", "stream_zip"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveMember:
    """One file of the archive: its name in the zip, its storage key, its type and when it was made."""

    name: str
    key: str
    media_type: str
    made_at: datetime


def archive_members(session: Session, *, owner: ApiKey, task_ids: Sequence[str]) -> list[ArchiveMember]:
    """Every generated file of the given tasks, as `<task_id>/<name>`, in the order the ids were given.

    Raises:
        NotFoundError: a task this key does not have.
        ConflictError: a task that is not completed (it has no outputs yet, or never will).
    """
    members: list[ArchiveMember] = []
    for task_id in dict.fromkeys(task_ids):
        task = get_task(session, owner=owner, task_id=task_id)
        if task.status != "completed":
            raise ConflictError(f"Task {task_id} is {task.status}; only completed tasks have outputs.")
        unexpired = or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > utc_now())
        rows = session.scalars(
            select(StoredFile)
            .where(StoredFile.task_id == task_id, unexpired)
            .order_by(StoredFile.created_at, StoredFile.id)
        )
        names: set[str] = set()
        for row in rows:
            name = row.name if row.name not in names else f"{row.id}-{row.name}"
            names.add(name)
            member = ArchiveMember(f"{task_id}/{name}", row.storage_key, row.media_type, row.created_at)
            members.append(member)
    if not members:
        raise NotFoundError("Generated files of tasks", ",".join(task_ids))
    return members


class _Pipe:
    """A write-only, unseekable file for `zipfile` that hands on what was written since the last `take()`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def stream_zip(storage: Storage, members: Sequence[ArchiveMember]) -> Iterator[bytes]:
    """The zip of `members`, a piece at a time (about a megabyte each). A member whose bytes vanished
    since it was listed (expired meanwhile) is left out."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, mode="w") as archive:
        for member in members:
            try:
                source = storage.open(member.key)
            except FileNotFoundError:
                continue
            with source:
                info = zipfile.ZipInfo(member.name, member.made_at.timetuple()[:6])
                info.external_attr = (stat.S_IFREG | 0o600) << 16  # as stored: a file only its owner reads
                is_media = member.media_type.startswith(("image/", "video/"))
                info.compress_type = zipfile.ZIP_STORED if is_media else zipfile.ZIP_DEFLATED
                with archive.open(info, mode="w", force_zip64=True) as entry:
                    while chunk := source.read(_CHUNK):
                        entry.write(chunk)
                        yield from _nonempty(pipe.take())
            yield from _nonempty(pipe.take())
    yield from _nonempty(pipe.take())


def _nonempty(data: bytes) -> Iterator[bytes]:
    if data:
        yield data
