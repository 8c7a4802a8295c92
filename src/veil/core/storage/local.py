"""Storage in a folder on local disk, addressed by relative keys.

Writers make a hidden file beside the key and rename it, so a reader never sees half a file. Folders are
created 0700 and files 0600, whatever the umask: storage holds every key's media.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from veil.core.safety.permissions import create_file, make_dirs, restrict
from veil.core.storage.base import (
    StorageFullError,
    StorageUnavailableError,
    UploadTooLargeError,
    disk_full_as_error,
)

__all__ = ["LocalStorage"]

_READ_CHUNK = 1024 * 1024


class LocalStorage:
    """Files under `root`, named by keys such as `key_x/file_y/photo.jpg` (see `Storage`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        """The file for `key`; keys are made by the server, but never trusted to stay inside the root."""
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key {key!r} leaves the storage root")
        return path

    def check(self) -> None:
        try:
            make_dirs(self.root)
            probe = self.root / f".check-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StorageUnavailableError(f"cannot write in the storage folder {self.root}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        with self.open(key) as source:
            source.seek(start)
            left = end - start
            while left > 0 and (chunk := source.read(min(left, _READ_CHUNK))):
                left -= len(chunk)
                yield chunk

    def local_file(self, key: str) -> Path | None:
        return self.path(key)

    @contextmanager
    def local_copy(self, key: str, folder: Path) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"nothing is stored under {key!r}")
        yield path

    def staging_path(self, key: str) -> Path:
        final = self.path(key)
        make_dirs(final.parent)
        return final.with_name(f".{final.stem}.partial{final.suffix}")

    def commit(self, staged: Path, key: str) -> int:
        final = self.path(key)
        restrict(staged)
        os.replace(staged, final)
        return final.stat().st_size

    async def append_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, offset: int, max_bytes: int
    ) -> int:
        path = self.path(key)
        create_file(path)
        written = 0
        with path.open("r+b") as out:
            out.truncate(offset)
            out.seek(offset)
            try:
                with disk_full_as_error():
                    async for chunk in chunks:
                        if written + len(chunk) > max_bytes:
                            raise UploadTooLargeError(f"larger than the remaining {max_bytes} bytes")
                        out.write(chunk)
                        written += len(chunk)
            except (UploadTooLargeError, StorageFullError):
                out.truncate(offset)
                raise
        return written

    def read_appended(self, key: str, size: int) -> bytes:
        try:
            with self.open(key) as source:
                return source.read(size)
        except FileNotFoundError:
            return b""

    def take_appended(self, key: str, length: int, staged: Path) -> None:
        source = self.path(key)
        with source.open("r+b") as data:
            data.truncate(length)  # past `length`, bytes of an attempt that was never recorded
        try:
            os.link(source, staged)
        except OSError:  # a file system without hard links
            shutil.copyfile(source, staged)

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        _remove_empty_parents(path.parent, self.root)

    def delete_tree(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
