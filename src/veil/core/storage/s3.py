"""Storage in an S3 bucket (AWS, SeaweedFS, MinIO, Ceph...), through obstore (chosen by measurement:
bench/s3_client.py).

Objects are written whole: a file is made at a local staging path below the scratch folder, then
uploaded (in parts of `PART_BYTES` when larger, several at once) and appears under its key in one step;
S3 never shows an object half-written. Resumable uploads keep each request's bytes as a piece of their
own, `<key>/<offset, 20 digits>`: S3 cannot append, and parts of a multipart upload must be 5 MB but
clients send chunks of any size. The pieces are joined into a local file when the upload completes
(the API has to read it whole then anyway, to check it), and any API process on any host can take the
next request, since nothing is kept on one machine between requests.
"""

from __future__ import annotations

import errno
import io
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from veil.core.safety.permissions import make_dirs, open_new, restrict
from veil.core.storage.base import StorageUnavailableError, UploadTooLargeError, disk_full_as_error

if TYPE_CHECKING:
    from obstore import ObjectMeta, ReadableFile
    from obstore.store import S3Config

__all__ = ["PART_BYTES", "S3Location", "S3Storage", "parse_s3_url"]

PART_BYTES = 8 * 1024 * 1024
"""Multipart part size: S3's least is 5 MB; 8 MB is the AWS CLI's default."""
_PARALLEL_PARTS = 2  # parts in flight per upload: each is held in memory while it travels
_READ_CHUNK = 1024 * 1024
_PIECE_DIGITS = 20


class S3Location:
    """A bucket and a key prefix inside it (no leading or trailing slash; "" for the whole bucket)."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket` or `s3://bucket/prefix` as a location.

    Raises:
        ValueError: not such a URL.
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{url!r} is not an S3 URL such as s3://bucket/prefix")
    return S3Location(parts.netloc, parts.path)


class S3Storage:
    """Objects under a bucket's prefix, named by keys such as `key_x/file_y/photo.jpg` (see `Storage`);
    files are staged and downloaded below `scratch` on this machine."""

    def __init__(
        self,
        location: S3Location,
        *,
        scratch: Path,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.location = location
        self.scratch = scratch.resolve()
        config: S3Config = {}
        if endpoint_url:
            config["endpoint"] = endpoint_url
        if region:
            config["region"] = region
        if access_key_id:
            config["access_key_id"] = access_key_id
        if secret_access_key:
            config["secret_access_key"] = secret_access_key
        allow_http = bool(endpoint_url and endpoint_url.startswith("http://"))
        prefix = location.prefix or None
        self.store = S3Store(
            location.bucket, prefix=prefix, config=config, client_options={"allow_http": allow_http}
        )
        # Readiness answers fast: one try, a short wait.
        self._probe = S3Store(
            location.bucket,
            prefix=prefix,
            config=config,
            client_options={"allow_http": allow_http, "connect_timeout": "2s", "timeout": "5s"},
            retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
        )

    def check(self) -> None:
        with _translated("list", str(self.location)):
            next(iter(obstore.list(self._probe, chunk_size=1)), None)

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        with _translated("head", key):
            return obstore.head(self.store, key)["size"]

    def open(self, key: str) -> BinaryIO:
        with _translated("open", key):
            reader = obstore.open_reader(self.store, key, buffer_size=_READ_CHUNK)
        return io.BufferedReader(_ObjectReader(reader, key), buffer_size=_READ_CHUNK)

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        with _translated("get", key):
            result = obstore.get(self.store, key, options={"range": (start, end)})
            for chunk in result.stream(_READ_CHUNK):
                yield bytes(chunk)

    def local_file(self, key: str) -> Path | None:
        return None

    @contextmanager
    def local_copy(self, key: str, folder: Path) -> Iterator[Path]:
        path = folder / PurePosixPath(key).name
        try:
            self._download([key], path)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def staging_path(self, key: str) -> Path:
        final = self._scratch_path(key)
        make_dirs(final.parent)
        return final.with_name(f".{final.stem}.partial{final.suffix}")

    def commit(self, staged: Path, key: str) -> int:
        size = staged.stat().st_size
        with _translated("put", key):
            obstore.put(self.store, key, staged, chunk_size=PART_BYTES, max_concurrency=_PARALLEL_PARTS)
        staged.unlink()
        return size

    async def append_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, offset: int, max_bytes: int
    ) -> int:
        for piece in self._pieces(key):
            if _piece_offset(piece) >= offset:  # an attempt whose bytes were never recorded
                self._delete([piece["path"]])
        counted = _Counted(chunks, max_bytes)
        first = await counted.first()
        if first is None:
            return 0
        with _translated("put", key):
            await obstore.put_async(
                self.store,
                f"{key}/{offset:0{_PIECE_DIGITS}d}",
                counted.stream(first),
                chunk_size=PART_BYTES,
                max_concurrency=_PARALLEL_PARTS,
            )
        return counted.size

    def read_appended(self, key: str, size: int) -> bytes:
        head = b""
        for piece in self._pieces(key):
            if len(head) >= size:
                break
            length = min(piece["size"], size - len(head))
            with _translated("get", piece["path"]):
                head += bytes(obstore.get_range(self.store, piece["path"], start=0, length=length))
        return head

    def take_appended(self, key: str, length: int, staged: Path) -> None:
        pieces, expected = [], 0
        for piece in self._pieces(key):
            if expected >= length:
                break
            if _piece_offset(piece) != expected:
                raise StorageUnavailableError(f"appended bytes of {key!r} miss bytes {expected} on")
            pieces.append(piece["path"])
            expected += piece["size"]
        self._download(pieces, staged, length)

    def delete(self, key: str) -> None:
        with _translated("delete", key):
            obstore.delete(self.store, key)
        self._delete([piece["path"] for piece in self._pieces(key)])

    def delete_tree(self, prefix: str) -> None:
        self._delete(self.list_keys(prefix))
        shutil.rmtree(self._scratch_path(prefix), ignore_errors=True)

    def list_keys(self, prefix: str) -> list[str]:
        """Every key below `prefix` (a folder: `a/b` lists `a/b/...`, not `a/bc`)."""
        with _translated("list", prefix):
            return [meta["path"] for batch in obstore.list(self.store, prefix) for meta in batch]

    def _scratch_path(self, key: str) -> Path:
        path = (self.scratch / key).resolve()
        if self.scratch not in path.parents:
            raise ValueError(f"storage key {key!r} leaves the scratch folder")
        return path

    def _pieces(self, key: str) -> list[ObjectMeta]:
        """The pieces appended to `key`, in order."""
        with _translated("list", key):
            found = [meta for batch in obstore.list(self.store, key) for meta in batch]
        pieces = [meta for meta in found if PurePosixPath(meta["path"]).parent.as_posix() == key]
        return sorted(pieces, key=_piece_offset)

    def _delete(self, paths: Sequence[str]) -> None:
        if paths:
            with _translated("delete", paths[0]):
                obstore.delete(self.store, paths)

    def _download(self, keys: Sequence[str], path: Path, length: int | None = None) -> None:
        """Writes the objects `keys`, one after another, to the new local file `path` (0600); at most
        `length` bytes when given. The file is removed on failure."""
        make_dirs(path.parent)
        left = length
        try:
            with disk_full_as_error(), open_new(path) as out:
                for key in keys:
                    with _translated("get", key):
                        for chunk in obstore.get(self.store, key).stream(_READ_CHUNK):
                            data = bytes(chunk) if left is None else bytes(chunk)[:left]
                            out.write(data)
                            left = None if left is None else left - len(data)
            restrict(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise


def _piece_offset(meta: ObjectMeta) -> int:
    name = PurePosixPath(meta["path"]).name
    return int(name) if name.isdigit() and len(name) == _PIECE_DIGITS else -1


class _Counted:
    """Chunks of a request, counted against a limit as they pass."""

    def __init__(self, chunks: AsyncIterator[bytes], max_bytes: int) -> None:
        self._chunks = chunks
        self._max_bytes = max_bytes
        self.size = 0

    def _count(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise UploadTooLargeError(f"larger than the remaining {self._max_bytes} bytes")
        return chunk

    async def first(self) -> bytes | None:
        """The first non-empty chunk, or None when the stream has no bytes (nothing is then written)."""
        async for chunk in self._chunks:
            if chunk:
                return self._count(chunk)
        return None

    async def stream(self, first: bytes) -> AsyncIterator[bytes]:
        yield first
        async for chunk in self._chunks:
            yield self._count(chunk)


class _ObjectReader(io.RawIOBase):
    """An object read as a file, through obstore's buffered, seekable reader."""

    def __init__(self, reader: ReadableFile, key: str) -> None:
        self._reader = reader
        self._key = key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        with _translated("get", self._key):
            data = self._reader.read(len(buffer))
        size = len(data)
        buffer[:size] = bytes(data)
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._reader.seek(offset, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        self._reader.close()
        super().close()


@contextmanager
def _translated(operation: str, key: str) -> Iterator[None]:
    """obstore's errors as storage errors: a missing object as FileNotFoundError, any other failure as
    StorageUnavailableError naming the operation (its first line only: the rest repeats the request)."""
    try:
        yield
    except NotFoundError as exc:
        raise FileNotFoundError(errno.ENOENT, f"nothing is stored under {key!r}") from exc
    except BaseError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageUnavailableError(f"S3 {operation} of {key!r} failed: {reason}") from exc
