"""What the service keeps on disk is its owner's alone, whatever the umask: the database, the embedded
broker's file and stored media are created 0600 in folders created 0700."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from kombu import Connection
from sqlalchemy.orm import Session

from tests.helpers import modes_below, umask
from veil.core.broker import embedded_broker_url
from veil.core.database.connection import create_db_engine, migrate
from veil.core.database.models import WorkerBeat
from veil.core.settings import Settings
from veil.core.storage import LocalStorage
from veil.core.storage.base import write_stream

UMASKS = [0o022, 0o002, 0o000]


@pytest.fixture(params=UMASKS, ids=[f"umask {mask:03o}" for mask in UMASKS])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[None]:
    with umask(request.param):
        yield


def owner_only(root: Path) -> dict[str, int]:
    """The modes below `root` that are not 0700 folders or 0600 files (so: none, when all is well)."""
    return {
        name: mode
        for name, mode in modes_below(root).items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    }


def test_the_database_and_its_wal_files_are_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    settings = Settings(data_dir=tmp_path / "var" / "veil")
    migrate(settings.database_url)
    engine = create_db_engine(settings.database_url)
    with Session(engine) as session:  # a write, so SQLite makes the -wal and -shm files
        session.add(WorkerBeat(name="worker-1"))
        session.commit()
        names = sorted(path.name for path in settings.data_dir.iterdir())
        assert names == ["veil.db", "veil.db-shm", "veil.db-wal"]
        assert owner_only(tmp_path / "var") == {}
    engine.dispose()


# kombu's own table mapping uses a loader option SQLAlchemy 2.1 deprecates; nothing for Veil to change.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_the_embedded_broker_file_is_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with Connection(embedded_broker_url(settings.broker_url)) as connection:
        queue = connection.SimpleQueue("veil-test")
        queue.put({"task_id": "task_a"})
        queue.get(timeout=5).ack()
        queue.close()

    assert (settings.data_dir / "broker.db").is_file()
    assert owner_only(settings.data_dir) == {}


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_stored_media_is_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    storage = LocalStorage(tmp_path / "storage")

    async def store_every_way() -> None:
        staged = storage.staging_path("key_a/file_1/photo.jpg")
        await write_stream(staged, _chunks(b"ph", b"oto"), max_bytes=100)
        storage.commit(staged, "key_a/file_1/photo.jpg")
        await storage.append_stream("key_a/uploads/upload_1", _chunks(b"vid"), offset=0, max_bytes=100)
        staged = storage.staging_path("key_a/file_2/video.mp4")
        storage.take_appended("key_a/uploads/upload_1", 3, staged)
        storage.commit(staged, "key_a/file_2/video.mp4")
        storage.delete("key_a/uploads/upload_1")

    anyio.run(store_every_way)
    staged = storage.staging_path("key_b/task_1/out.png")
    staged.write_bytes(b"written by an encoder, with the umask's mode")
    storage.commit(staged, "key_b/task_1/out.png")

    stored = {name for name, _ in modes_below(storage.root).items() if (storage.root / name).is_file()}
    assert stored == {
        "key_a/file_1/photo.jpg",
        "key_a/file_2/video.mp4",
        "key_b/task_1/out.png",
    }
    assert owner_only(storage.root) == {}
