"""Every storage backend keeps the same promises (`veil.core.storage.base.Storage`): the contract runs on
local disk and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.s3_server import S3Server
from veil.core.settings import Settings
from veil.core.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageUnavailableError,
    UploadTooLargeError,
    open_storage,
)
from veil.core.storage.s3 import PART_BYTES


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "storage")
    server: S3Server = request.getfixturevalue("s3_server")
    prefix = f"contract-{secrets.token_hex(4)}"
    settings = Settings(data_dir=tmp_path, **_s3_settings(server, f"s3://{server.bucket}/{prefix}"))
    return open_storage(settings)


def _s3_settings(server: S3Server, url: str) -> dict[str, str]:
    return {name.removeprefix("VEIL_").lower(): value for name, value in server.env(url).items()}


def _put(storage: Storage, key: str, data: bytes) -> None:
    staged = storage.staging_path(key)
    staged.write_bytes(data)
    assert storage.commit(staged, key) == len(data)
    assert not staged.exists()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _append(storage: Storage, key: str, *parts: bytes, offset: int, max_bytes: int = 1 << 30) -> int:
    async def run() -> int:
        return await storage.append_stream(key, _chunks(*parts), offset=offset, max_bytes=max_bytes)

    return anyio.run(run)


def test_factory_picks_the_backend_from_the_url(tmp_path: Path, s3_server: S3Server) -> None:
    assert isinstance(open_storage(Settings(data_dir=tmp_path)), LocalStorage)
    url = f"s3://{s3_server.bucket}/some/prefix"
    s3 = open_storage(Settings(data_dir=tmp_path, **_s3_settings(s3_server, url)))
    assert isinstance(s3, S3Storage)
    assert str(s3.location) == url


@pytest.mark.parametrize("url", ["s3://", "http://bucket/x", "s3://bucket?x=1", "bucket/prefix"])
def test_settings_refuse_a_storage_url_that_is_not_s3(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValueError, match="storage_url"):
        Settings(data_dir=tmp_path, storage_url=url)


def test_a_committed_file_reads_back_whole_in_ranges_and_by_seeking(storage: Storage) -> None:
    data = os.urandom(3000)
    _put(storage, "key_a/file_1/photo.jpg", data)

    assert storage.exists("key_a/file_1/photo.jpg")
    assert storage.size("key_a/file_1/photo.jpg") == 3000
    with storage.open("key_a/file_1/photo.jpg") as source:
        assert source.read(10) == data[:10]
        source.seek(2990)
        assert source.read() == data[2990:]
    assert b"".join(storage.read_range("key_a/file_1/photo.jpg", 100, 2100)) == data[100:2100]


def test_commit_replaces_what_was_there(storage: Storage) -> None:
    _put(storage, "key_a/task_1/1/out.png", b"first attempt")
    _put(storage, "key_a/task_1/1/out.png", b"second")
    with storage.open("key_a/task_1/1/out.png") as source:
        assert source.read() == b"second"


def test_a_large_file_goes_in_parts_and_comes_back_intact(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(2 * PART_BYTES + 12345)
    _put(storage, "key_a/file_1/video.mp4", data)

    with storage.local_copy("key_a/file_1/video.mp4", tmp_path) as copy:
        assert copy.read_bytes() == data
        assert copy.name == "video.mp4"
    assert copy.exists() == (storage.local_file("key_a/file_1/video.mp4") is not None)


def test_nothing_stored_is_file_not_found(storage: Storage, tmp_path: Path) -> None:
    assert not storage.exists("key_a/file_9/none.jpg")
    with pytest.raises(FileNotFoundError):
        storage.size("key_a/file_9/none.jpg")
    with pytest.raises(FileNotFoundError):
        storage.open("key_a/file_9/none.jpg")
    with pytest.raises(FileNotFoundError), storage.local_copy("key_a/file_9/none.jpg", tmp_path):
        pass
    storage.delete("key_a/file_9/none.jpg")  # no error


def test_delete_and_delete_tree_remove_only_what_they_name(storage: Storage) -> None:
    for key in (
        "key_a/task_1/1/out.png",
        "key_a/task_1/1/out.png.json",
        "key_a/task_10/1/x.png",
        "key_a/f/y",
    ):
        _put(storage, key, b"x")
    staged = storage.staging_path("key_a/task_1/2/half.mp4")
    staged.write_bytes(b"half written")

    storage.delete_tree("key_a/task_1")
    storage.delete("key_a/f/y")

    assert not storage.exists("key_a/task_1/1/out.png")
    assert not storage.exists("key_a/task_1/1/out.png.json")
    assert not staged.exists()
    assert not storage.exists("key_a/f/y")
    assert storage.exists("key_a/task_10/1/x.png")


def test_appended_bytes_become_one_file(storage: Storage, tmp_path: Path) -> None:
    key = "uploads/key_a/upload_1"
    big = os.urandom(PART_BYTES + 1000)
    assert _append(storage, key, b"abc", b"def", offset=0) == 6
    assert _append(storage, key, b"", offset=6) == 0
    assert _append(storage, key, big, offset=6) == len(big)
    assert storage.read_appended(key, 4) == b"abcd"
    assert storage.read_appended(key, 10) == b"abcdef" + big[:4]

    staged = tmp_path / "staged" / "video.mp4"
    staged.parent.mkdir()
    storage.take_appended(key, 6 + len(big), staged)

    assert staged.read_bytes() == b"abcdef" + big
    assert storage.read_appended(key, 6) == b"abcdef", "kept until the file is recorded"
    storage.delete(key)
    assert storage.read_appended(key, 6) == b""


def test_appending_at_an_earlier_offset_drops_what_an_unrecorded_attempt_left(
    storage: Storage, tmp_path: Path
) -> None:
    key = "uploads/key_a/upload_2"
    _append(storage, key, b"0123", offset=0)
    _append(storage, key, b"unrecorded", offset=4)  # the server never recorded this offset

    assert _append(storage, key, b"4567", offset=4) == 4
    staged = tmp_path / "joined"
    storage.take_appended(key, 8, staged)
    assert staged.read_bytes() == b"01234567"


def test_appending_too_much_keeps_nothing_of_it(storage: Storage, tmp_path: Path) -> None:
    key = "uploads/key_a/upload_3"
    _append(storage, key, b"0123", offset=0)

    with pytest.raises(UploadTooLargeError):
        _append(storage, key, b"45", b"678", offset=4, max_bytes=4)

    assert storage.read_appended(key, 100) == b"0123"
    assert _append(storage, key, b"45", offset=4) == 2
    storage.delete(key)
    assert storage.read_appended(key, 100) == b""


def test_storage_that_answers_is_ready(storage: Storage) -> None:
    storage.check()


def test_s3_that_refuses_the_credentials_is_not_ready_and_says_so_without_them(
    tmp_path: Path, s3_server: S3Server
) -> None:
    settings = _s3_settings(s3_server, f"s3://{s3_server.bucket}/x")
    settings["s3_secret_access_key"] = "wrong-secret-never-shown"
    storage = open_storage(Settings(data_dir=tmp_path, **settings))

    with pytest.raises(StorageUnavailableError, match="S3 list") as refused:
        storage.check()
    assert "wrong-secret-never-shown" not in str(refused.value)


def test_s3_that_cannot_be_reached_is_not_ready(tmp_path: Path, s3_server: S3Server) -> None:
    settings = _s3_settings(s3_server, f"s3://{s3_server.bucket}/x")
    settings["s3_endpoint_url"] = "http://127.0.0.1:9"  # discard: nothing listens
    with pytest.raises(StorageUnavailableError, match="S3 list"):
        open_storage(Settings(data_dir=tmp_path, **settings)).check()
