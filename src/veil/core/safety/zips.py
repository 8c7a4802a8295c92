"""Reading a backup a client sent without trusting it, a member at a time and streamed to disk (a backup
holds videos, which `veil.engine.annotations.Bundle` would read whole into memory): names are checked by
the same rule as annotation archives (`check_member_name`: no `..`, absolute or drive names), links are
refused, and the archive may not unpack to more than a limit or expand far beyond its compressed size
(a zip bomb). zipfile stops each member at its declared size and checks its CRC.

    UnsafeArchiveError    (the engine's) a member name escaping its folder, a link, a zip bomb
    UnreadableInputError  not a zip, a member missing or damaged, or too large unpacked
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

from veil.core.errors import UnreadableInputError
from veil.core.safety.permissions import open_new
from veil.engine.annotations.archive import MAX_RATIO, check_member_name
from veil.engine.errors import UnsafeArchiveError

__all__ = ["SafeZip"]

_SMALL = 1024 * 1024  # members below this size may expand any amount: the ratio of tiny files means nothing
_CHUNK = 1024 * 1024


class SafeZip:
    """A zip file whose members were checked when it was opened; use it as a context manager.

    Args:
        path: the zip file.
        max_bytes: the most all members together may unpack to.

    Raises:
        UnreadableInputError: not a zip file, or too large unpacked.
        UnsafeArchiveError: a member with an unsafe name or type, or one that expands too far.
    """

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise UnreadableInputError("The file is not a zip archive.") from exc
        try:
            self._members = {info.filename: info for info in self._zip.infolist() if not info.is_dir()}
            for info in self._members.values():
                _check_member(info)
            total = sum(info.file_size for info in self._members.values())
            if total > max_bytes:
                raise UnreadableInputError(
                    f"The archive unpacks to {total} bytes, more than the limit of {max_bytes}."
                )
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *_: object) -> None:
        self._zip.close()

    def names(self) -> list[str]:
        """The files in the archive (folders left out), in archive order."""
        return list(self._members)

    def read(self, name: str, max_bytes: int) -> bytes:
        """The bytes of member `name`.

        Raises:
            UnreadableInputError: no such member, or larger than `max_bytes`.
        """
        info = self._member(name)
        if info.file_size > max_bytes:
            raise UnreadableInputError(
                f"{name} in the archive is larger than the limit of {max_bytes} bytes."
            )
        return b"".join(self._chunks(info))

    def extract(self, name: str, target: Path) -> int:
        """Writes member `name` to the new file `target` (0600); returns its size.

        Raises:
            UnreadableInputError: no such member, or it is damaged.
        """
        info = self._member(name)
        with open_new(target) as out:
            for chunk in self._chunks(info):
                out.write(chunk)
        return info.file_size

    def _member(self, name: str) -> zipfile.ZipInfo:
        info = self._members.get(name)
        if info is None:
            raise UnreadableInputError(f"The archive has no {name}.")
        return info

    def _chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The member's bytes a piece at a time; zipfile stops at the declared size and checks the CRC, so
        a member cannot unpack to more than it declared."""
        try:
            with self._zip.open(info) as member:
                while chunk := member.read(_CHUNK):
                    yield chunk
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise UnreadableInputError(f"{info.filename} in the archive is damaged: {exc}") from exc


def _check_member(info: zipfile.ZipInfo) -> None:
    name = check_member_name(info.filename, "The archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"The archive: the member {name!r} is a link; links are refused")
    if info.file_size > _SMALL and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise UnsafeArchiveError(
            f"The archive: the member {name!r} expands {info.file_size // max(info.compress_size, 1)} "
            f"times; more than {MAX_RATIO} is refused as a zip bomb"
        )
