"""kill -9 of one of two API processes (`veil serve --role api`, one database, one storage) while clients
upload to it: resumable uploads go on at the other process from the offset the database recorded, plain
uploads are sent again there, and each upload ends as exactly one file, stored whole, even when the
process dies between storing the file made of a resumable upload and recording it. What the killed
process was staging is swept by the scheduler's maintenance.

Storage is S3 (a real SeaweedFS; each API process has a data folder of its own, as on two hosts) or a
local folder both processes share. The database is a private PostgreSQL database and the broker a Redis
the test starts (tests/services.py).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select, text

from tests.cluster.conftest import Cluster, Process, cluster_env, until
from tests.s3_server import S3Server
from tests.services import private_postgres, private_redis
from veil.core.database.models import Lease, StoredFile, Upload
from veil.core.queue import TaskQueue, create_celery
from veil.core.services.maintenance import run_maintenance
from veil.core.settings import Settings
from veil.core.storage import S3Storage, open_storage

LOCK_S = 2.0
"""How long the lock of a resumable upload outlives the killed process holding it (VEIL_UPLOAD_LOCK_S)."""
CHUNK = 64 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
GONE = (httpx.TransportError,)  # what a client sees of a process killed mid-request


@dataclass
class Pair:
    cluster: Cluster
    victim: Process
    survivor: Process
    kind: str
    settings: dict[str, Settings]  # each process's, by name ("victim", "survivor")

    def start_victim(self) -> None:
        """A new victim process on the victim's data folder, as when its host restarts it."""
        self.victim = self.cluster.api({"VEIL_DATA_DIR": str(self.settings["victim"].data_dir)})

    def staging(self, name: str) -> Path:
        """Where process `name` stages files: its scratch folder for S3, beside each key on local disk."""
        settings = self.settings[name]
        return settings.scratch_dir if self.kind == "s3" else settings.storage_dir

    def stored_keys(self) -> set[str]:
        """Every object (S3) or visible file (local: not a hidden staged one) in storage."""
        storage = open_storage(self.settings["survivor"])
        if isinstance(storage, S3Storage):
            return set(storage.list_keys(""))
        root = self.settings["survivor"].storage_dir
        files = [path for path in root.rglob("*") if path.is_file() and not path.name.startswith(".")]
        return {path.relative_to(root).as_posix() for path in files}


@pytest.fixture(scope="module", params=["s3", "local"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two API processes on one database, broker and storage; S3 storage gives each its own data folder."""
    directory = tmp_path_factory.mktemp(f"api-killed-{request.param}")
    storage: dict[str, str] = {}
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        storage = s3.env(f"s3://{s3.bucket}/api-killed")
    with private_redis(directory) as redis_server, private_postgres() as database_url:
        env = cluster_env(
            directory,
            database_url,
            redis_server.url,
            VEIL_UPLOAD_LOCK_S=str(LOCK_S),
            VEIL_RATE_LIMIT="100000/minute",
            **storage,
        )
        folders = {name: directory / (name if storage else "data") for name in ("victim", "survivor")}
        cluster = Cluster(directory, env, database_url)
        try:
            victim, survivor = (cluster.api({"VEIL_DATA_DIR": str(folder)}) for folder in folders.values())
            settings = {
                name: Settings(**_settings_of({**env, "VEIL_DATA_DIR": str(folder)}))
                for name, folder in folders.items()
            }
            yield Pair(cluster, victim, survivor, request.param, settings)
        finally:
            cluster.stop_all()


def _settings_of(env: dict[str, str]) -> dict[str, str]:
    return {name.removeprefix("VEIL_").lower(): value for name, value in env.items()}


def _photo(side: int, seed: int) -> bytes:
    """A PNG of noise, about 3 * side**2 bytes (noise does not compress)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@dataclass
class Client:
    """One upload, started at the victim and held in the middle of a request, then finished where it can.

    Resumable: a first request of `first` bytes completes; a second is held after `held_at` bytes in all.
    Plain: the one request is held after `held_at` bytes of its body."""

    name: str
    content: bytes
    resumable: bool
    held_at: int
    first: int = CHUNK
    chunk: int = CHUNK  # bytes per request when resuming
    holding: threading.Event = field(default_factory=threading.Event)
    upload_id: str = ""
    file_id: str = ""
    conflicts: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def run(self, pair: Pair, key: dict[str, str], killed: threading.Event) -> None:
        try:
            if self.resumable:
                self._resumable(pair, key, killed)
            else:
                self._plain(pair, key, killed)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _held(self, data: bytes, killed: threading.Event) -> Iterator[bytes]:
        yield data
        self.holding.set()
        killed.wait(60)

    def _plain(self, pair: Pair, key: dict[str, str], killed: threading.Event) -> None:
        request = httpx.Request("POST", "/", files={"file": (self.name, self.content)})
        body = request.read()
        headers = {**key, "Content-Type": request.headers["content-type"]}
        try:
            answer = httpx.post(
                f"{pair.victim.url}/v1/files",
                headers=headers,
                content=self._held(body[: self.held_at], killed),
            )
            raise AssertionError(f"the killed process answered {answer.status_code}")
        except GONE:
            pass
        again = httpx.post(
            f"{pair.survivor.url}/v1/files", headers=key, files={"file": (self.name, self.content)}
        )
        assert again.status_code == 201, again.text
        self.file_id = again.json()["id"]

    def _resumable(self, pair: Pair, key: dict[str, str], killed: threading.Event) -> None:
        location = self.start(pair.victim, key)
        held = self._held(self.content[self.first : self.held_at], killed)
        try:
            answer = self.patch(pair.victim, key, location, self.first, held)
            raise AssertionError(f"the killed process answered {answer.status_code}")
        except GONE:
            pass
        self.resume(pair.survivor, key, location)

    def start(self, api: Process, key: dict[str, str]) -> str:
        """Creates the resumable upload and sends its first `first` bytes; returns its location."""
        metadata = f"filename {base64.b64encode(self.name.encode()).decode()}"
        headers = {**key, **TUS, "Upload-Length": str(len(self.content)), "Upload-Metadata": metadata}
        created = httpx.post(f"{api.url}/v1/uploads", headers=headers)
        assert created.status_code == 201, created.text
        location: str = created.headers["location"]
        self.upload_id = location.rsplit("/", 1)[-1]
        assert self.patch(api, key, location, 0, self.content[: self.first]).status_code == 204
        return location

    def resume(self, api: Process, key: dict[str, str], location: str) -> None:
        """Sends the rest from the offset the server has, a chunk per request, waiting out 409s."""
        deadline = time.monotonic() + 10 * LOCK_S
        while not self.file_id:
            assert time.monotonic() < deadline, f"{self.name}: not finished {10 * LOCK_S} s after the kill"
            offset = int(httpx.head(f"{api.url}{location}", headers={**key, **TUS}).headers["upload-offset"])
            if offset == len(self.content):  # finished by the request that seemed lost
                self.file_id = httpx.get(f"{api.url}{location}", headers=key).json()["file"]["id"]
                return
            answer = self.patch(api, key, location, offset, self.content[offset : offset + self.chunk])
            if answer.status_code == 409:
                self.conflicts.append(answer.json()["detail"])
                time.sleep(LOCK_S / 4)
                continue
            assert answer.status_code == 204, answer.text
            self.file_id = answer.headers.get("veil-file-id", "")

    @staticmethod
    def patch(
        api: Process, key: dict[str, str], location: str, offset: int, content: bytes | Iterator[bytes]
    ) -> httpx.Response:
        headers = {
            **key,
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        return httpx.patch(f"{api.url}{location}", headers=headers, content=content, timeout=30)


def _staged_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob(".*.partial*") if path.is_file()]


def test_uploads_to_a_killed_api_process_end_once_at_the_other(pair: Pair) -> None:
    """GIVEN clients in the middle of resumable uploads (one over the S3 part size) and of plain uploads
        to one API process
    WHEN that process is killed with SIGKILL
    THEN each resumable upload goes on at the other process from the offset recorded, refused with a 409
        saying why while the dead process's lock lasts, and each plain upload is sent again there; every
        upload ends as one file row and one stored object with exactly its bytes, nothing else is
        stored, and what the killed process was staging is swept from its scratch folder."""
    key = pair.cluster.new_key(f"uploader-{pair.kind}")
    clients = [Client(f"r{n}.png", _photo(300, n), True, held_at=CHUNK + CHUNK // 2) for n in range(3)]
    big = _photo(2000, 9)  # 12 MB: its held request passes the 8 MB S3 part size
    clients.append(Client("big.png", big, True, first=1024**2, held_at=10 * 1024**2, chunk=4 * 1024**2))
    clients += [Client(f"p{n}.png", _photo(300, 10 + n), False, held_at=2 * CHUNK) for n in range(2)]
    killed = threading.Event()
    threads = [threading.Thread(target=c.run, args=(pair, key, killed), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    staging = pair.staging("victim")

    def all_held() -> bool | None:
        if not all(client.holding.is_set() for client in clients):
            return None
        with pair.cluster.sessions() as session:
            locks = set(session.scalars(select(Lease.name).where(Lease.name.like("upload:%"))))
        resumable = {f"upload:{client.upload_id}" for client in clients if client.resumable}
        return (locks >= resumable and len(_staged_files(staging)) == 2) or None

    until(all_held, 30, "every client to be in the middle of a request to the victim")
    pair.victim.popen.kill()
    pair.victim.popen.wait()
    killed.set()
    for thread in threads:
        thread.join(60)

    assert [(client.name, client.error) for client in clients if client.error] == []
    conflicts = [detail for client in clients for detail in client.conflicts]
    assert conflicts, "the dead process's lock held no upload back"
    assert all("Another request is sending bytes of upload" in detail for detail in conflicts)
    with pair.cluster.sessions() as session:
        owner_files = session.scalars(
            select(StoredFile).where(StoredFile.name.in_([c.name for c in clients]))
        )
        files = {row.id: row for row in owner_files}
        uploads = {row.id: row for row in session.scalars(select(Upload))}
    assert sorted(files) == sorted(client.file_id for client in clients)
    for client in clients:
        content = httpx.get(f"{pair.survivor.url}/v1/files/{client.file_id}/content", headers=key, timeout=30)
        assert hashlib.sha256(content.content).digest() == hashlib.sha256(client.content).digest(), (
            client.name
        )
        if client.resumable:
            upload = uploads[client.upload_id]
            assert (upload.offset, upload.file_id) == (len(client.content), client.file_id)
    assert pair.stored_keys() == {row.storage_key for row in files.values()}
    if pair.kind == "s3":
        _sweep(pair)
        assert _staged_files(staging) == []
        assert _staged_files(pair.staging("survivor")) == []


def test_a_resumable_upload_killed_while_it_becomes_a_file_is_finished_at_the_other(pair: Pair) -> None:
    """GIVEN a resumable upload whose last request reached one API process, which has stored the file made
        of its bytes but not yet recorded it (the test holds the upload's row locked, so the process
        waits there)
    WHEN that process is killed with SIGKILL
    THEN the client sends the last bytes again to the other process, and the upload ends as one file,
        stored once (in place of what the killed process stored), with its bytes."""
    key = pair.cluster.new_key(f"finisher-{pair.kind}")
    pair.start_victim()
    content = _photo(600, 20)  # 1 MB
    client = Client("last.png", content, True, held_at=len(content), first=len(content) - CHUNK)
    location = client.start(pair.victim, key)
    with pair.cluster.engine.connect() as holder:
        holder.execute(select(Upload.id).where(Upload.id == client.upload_id).with_for_update())
        last = threading.Thread(target=_send_rest, args=(client, pair.victim, key, location), daemon=True)
        last.start()
        until(lambda: _waiting_for_a_lock(pair), 30, "the victim to wait for the upload's row")
        stored_by_victim = pair.stored_keys()
        pair.victim.popen.kill()
        pair.victim.popen.wait()
    last.join(30)

    client.resume(pair.survivor, key, location)

    content_now = httpx.get(f"{pair.survivor.url}/v1/files/{client.file_id}/content", headers=key, timeout=30)
    assert hashlib.sha256(content_now.content).digest() == hashlib.sha256(content).digest()
    with pair.cluster.sessions() as session:
        upload = session.get_one(Upload, client.upload_id)
        file = session.get_one(StoredFile, client.file_id)
        stored = set(session.scalars(select(StoredFile.storage_key)))
    assert (upload.offset, upload.file_id) == (len(content), file.id)
    assert pair.stored_keys() == stored, "no appended bytes left, nothing stored twice"
    assert file.storage_key in stored_by_victim, "the victim had stored the file when it was killed"


def _send_rest(client: Client, api: Process, key: dict[str, str], location: str) -> None:
    with contextlib.suppress(*GONE):
        client.patch(api, key, location, client.first, client.content[client.first :])


def _waiting_for_a_lock(pair: Pair) -> bool | None:
    """Whether a connection to the database waits for a row lock to update an upload."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE uploads%'"
    )
    with pair.cluster.sessions() as session:
        return bool(session.scalar(waiting)) or None


def _sweep(pair: Pair) -> None:
    """The scheduler's maintenance pass on the victim's host, with everything in scratch already stale."""
    stale = pair.settings["victim"].model_copy(update={"scratch_max_age_s": 0.001})
    run_maintenance(pair.cluster.sessions, open_storage(stale), TaskQueue(create_celery(stale)), stale)
