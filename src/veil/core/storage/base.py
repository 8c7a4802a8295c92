"""What every storage backend offers: file bytes named by keys such as `key_x/file_y/photo.jpg`.

A backend never shows a half-written file: writers make the file at a local `staging_path` and `commit`
it, which replaces what was under the key in one step, so a retried task simply replaces what an
interrupted attempt left. Resumable uploads add their bytes a request at a time (`append_stream`) and
become one file when complete (`take_appended`, then `delete` once the file is recorded). Errors are
these, with a message for a person:

    OSError
    ├── FileNotFoundError        no bytes under the key
    ├── StorageFullError         the disk holding storage (or the local scratch space) is full
    └── StorageUnavailableError  the object store cannot be reached, or refused the request
    ValueError
    └── UploadTooLargeError      a stream went over its size limit; nothing of it was kept
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from veil.core.safety.permissions import make_dirs, open_new

__all__ = [
    "Storage",
    "StorageFullError",
    "StorageUnavailableError",
    "UploadTooLargeError",
    "disk_full_as_error",
    "write_stream",
]


class StorageFullError(OSError):
    """The disk holding storage is full."""


class StorageUnavailableError(OSError):
    """The object store cannot be reached or refused a request; the message names the operation and the
    store's answer, never a credential."""


class UploadTooLargeError(ValueError):
    """A stream went over its size limit; nothing was kept."""


class Storage(Protocol):
    """File bytes under keys: local disk (`LocalStorage`) or an S3 bucket (`S3Storage`)."""

    def check(self) -> None:
        """Returns when storage can be read and written now.

        Raises:
            StorageUnavailableError: it cannot, and why.
        """

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int:
        """Raises: FileNotFoundError."""

    def open(self, key: str) -> BinaryIO:
        """The bytes under `key` as a file to read from the start (and seek in).

        Raises:
            FileNotFoundError: nothing is stored under `key`.
        """

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes `start` to `end` (exclusive) of `key`, a piece at a time (an HTTP Range answer).

        Raises:
            FileNotFoundError: nothing is stored under `key`.
        """

    def local_file(self, key: str) -> Path | None:
        """The file holding `key` on this machine's disk when storage is a local folder (so it can be
        served with sendfile or opened by path); None for remote storage."""

    def local_copy(self, key: str, folder: Path) -> AbstractContextManager[Path]:
        """For the block's duration, a local file with the bytes of `key` and its name: the stored file
        itself on local disk, else a copy downloaded into `folder` and removed after.

        Raises:
            FileNotFoundError: nothing is stored under `key`.
        """

    def staging_path(self, key: str) -> Path:
        """A local path, with `key`'s suffix (encoders pick the format by it), where a writer makes the file
        that `commit` then stores under `key`; `delete_tree` of a prefix of `key` removes it too."""

    def commit(self, staged: Path, key: str) -> int:
        """Stores the file at `staged` (from `staging_path(key)`) under `key` in one step, replacing what was
        there; the staged file is gone after. Returns the size."""

    async def append_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, offset: int, max_bytes: int
    ) -> int:
        """Writes the chunks into `key` from byte `offset` on (what an unrecorded earlier attempt left past
        `offset` is dropped first); returns how many bytes were written. A stream that ends early keeps
        what arrived.

        Raises:
            UploadTooLargeError: more than `max_bytes` arrived; nothing of the chunks is kept.
            StorageFullError: the disk is full; nothing of the chunks is kept.
        """

    def read_appended(self, key: str, size: int) -> bytes:
        """The first `size` bytes appended to `key` so far (fewer when there are fewer; none when nothing
        was)."""

    def take_appended(self, key: str, length: int, staged: Path) -> None:
        """Puts the first `length` bytes appended to `key` in the local file `staged` (a hard link on local
        disk). They stay under `key` until `delete(key)`: a process killed before it recorded the file
        leaves the upload whole, to be finished again."""

    def delete(self, key: str) -> None:
        """Removes what is stored under `key`, written whole or appended; nothing there is no error."""

    def delete_tree(self, prefix: str) -> None:
        """Removes every key below `prefix` (a folder: `owner/task`), and what is staged for them."""


async def write_stream(path: Path, chunks: AsyncIterator[bytes], max_bytes: int) -> int:
    """Writes the chunks to the new local file `path` (0600, folders 0700); returns the size. On any
    failure the file is removed.

    Raises:
        UploadTooLargeError: more than `max_bytes` arrived.
        StorageFullError: the disk is full.
    """
    make_dirs(path.parent)
    size = 0
    try:
        with disk_full_as_error(), open_new(path) as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLargeError(f"larger than the limit of {max_bytes} bytes")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size


@contextmanager
def disk_full_as_error() -> Iterator[None]:
    """Turns ENOSPC into StorageFullError with a message a person understands."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorageFullError(errno.ENOSPC, "the disk holding Veil's storage is full") from exc
        raise
