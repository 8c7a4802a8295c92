"""Where file bytes live: a folder on local disk, addressed by relative keys.

Writes go to a temporary name and are renamed when complete, so a reader never sees half a file and a
retried task simply replaces what an interrupted attempt left. Folders are created 0700 and files 0600,
whatever the umask: storage holds every key's media.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

from veil.core.owner_only import create_file, make_dirs, open_new, restrict

__all__ = ["LocalStorage", "StorageFullError", "UploadTooLargeError"]


class StorageFullError(OSError):
    """The disk holding storage is full."""


class UploadTooLargeError(ValueError):
    """A stream went over its size limit; nothing was kept."""


class LocalStorage:
    """Files under `root`, named by keys such as `key_x/file_y/photo.jpg`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        """The file for `key`; keys are made by the server, but never trusted to stay inside the root."""
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key {key!r} leaves the storage root")
        return path

    def _staging(self, key: str) -> tuple[Path, Path]:
        final = self.path(key)
        make_dirs(final.parent)
        return final, final.with_name(f".{final.name}.partial-{os.getpid()}")

    def staging_path(self, key: str) -> Path:
        """A hidden name beside `key`, with its suffix (encoders pick the format by it), for a writer that
        makes the file itself; `commit` then moves it to `key`."""
        final = self.path(key)
        make_dirs(final.parent)
        return final.with_name(f".{final.stem}.partial{final.suffix}")

    def commit(self, staged: Path, key: str) -> Path:
        """Makes the file written at `staged` owner-only and renames it to `key`; returns its path."""
        final = self.path(key)
        restrict(staged)
        os.replace(staged, final)
        return final

    async def save_stream(self, key: str, chunks: AsyncIterator[bytes], max_bytes: int) -> int:
        """Writes the chunks under `key`; returns the size.

        Raises:
            UploadTooLargeError: more than `max_bytes` arrived.
            StorageFullError: the disk is full.
        """
        final, staging = self._staging(key)
        size = 0
        try:
            with _disk_full_as_error(), open_new(staging) as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadTooLargeError(f"larger than the limit of {max_bytes} bytes")
                    out.write(chunk)
            os.replace(staging, final)
        finally:
            staging.unlink(missing_ok=True)
        return size

    def save_file(self, key: str, source: Path) -> int:
        """Copies `source` under `key`; returns the size."""
        final, staging = self._staging(key)
        try:
            with _disk_full_as_error(), open_new(staging) as out, source.open("rb") as data:
                shutil.copyfileobj(data, out)
            os.replace(staging, final)
        finally:
            staging.unlink(missing_ok=True)
        return final.stat().st_size

    async def append_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, offset: int, max_bytes: int
    ) -> int:
        """Writes the chunks into `key` from byte `offset` on (the file is cut there first, dropping what an
        unrecorded earlier attempt left); returns how many bytes were written. A stream that ends early
        keeps what arrived.

        Raises:
            UploadTooLargeError: more than `max_bytes` arrived; the file is cut back to `offset`.
            StorageFullError: the disk is full; the file is cut back to `offset`.
        """
        path = self.path(key)
        create_file(path)
        written = 0
        with path.open("r+b") as out:
            out.truncate(offset)
            out.seek(offset)
            try:
                with _disk_full_as_error():
                    async for chunk in chunks:
                        if written + len(chunk) > max_bytes:
                            raise UploadTooLargeError(f"larger than the remaining {max_bytes} bytes")
                        out.write(chunk)
                        written += len(chunk)
            except (UploadTooLargeError, StorageFullError):
                out.truncate(offset)
                raise
        return written

    def move(self, source_key: str, key: str) -> int:
        """Renames the file `source_key` to `key` (same disk, so no copy); returns its size."""
        source, final = self.path(source_key), self.path(key)
        make_dirs(final.parent)
        os.replace(source, final)
        _remove_empty_parents(source.parent, self.root)
        return final.stat().st_size

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


@contextmanager
def _disk_full_as_error() -> Iterator[None]:
    """Turns ENOSPC into StorageFullError with a message a person understands."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageFullError(errno.ENOSPC, "the disk holding Veil's storage is full") from exc
        raise
