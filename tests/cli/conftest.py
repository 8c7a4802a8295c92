"""Fixtures for the server-side commands and the HTTP client: a data dir named by the environment, and the
real API served by uvicorn on a free local port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from tests.server.conftest import make_key
from veil.core.database.connection import create_db_engine, migrate
from veil.core.settings import Settings, get_settings
from veil.server.main import create_app


@pytest.fixture
def veil_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings read from the environment, as the commands read them, with a data dir under tmp_path."""
    monkeypatch.setenv("VEIL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VEIL_RATE_LIMIT", "1000/minute")
    monkeypatch.delenv("VEIL_CONFIG", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    sessions: sessionmaker[Session]
    queue: RecordingQueue


def _serve_in_thread(server: uvicorn.Server, sock: socket.socket) -> threading.Thread:
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return thread


@contextmanager
def serving(settings: Settings) -> Iterator[LiveServer]:
    """The API for `settings` on 127.0.0.1:<free port>, its broker replaced by a queue that records what
    was sent."""
    migrate(settings.database_url)
    engine = create_db_engine(settings.database_url)
    queue = RecordingQueue()
    app = create_app(settings, queue=queue)  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, ws="none", lifespan="on"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        thread = _serve_in_thread(server, sock)
        port = sock.getsockname()[1]
        try:
            yield LiveServer(
                f"http://127.0.0.1:{port}", settings, sessionmaker(engine, expire_on_commit=False), queue
            )
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            engine.dispose()


@pytest.fixture
def live_server(veil_env: Settings) -> Iterator[LiveServer]:
    with serving(veil_env) as server:
        yield server


@pytest.fixture
def api_key(live_server: LiveServer) -> str:
    """A plain key's secret on the live server."""
    return make_key(live_server.sessions, "alice")["x-api-key"]


PatchFailure = Literal["dropped", "503"]


def failing_patches(monkeypatch: pytest.MonkeyPatch, numbers: set[int], how: PatchFailure) -> list[int]:
    """Makes the PATCHes numbered `numbers` (1, 2, ...) of this test's HTTP clients fail: "dropped" sends the
    first half of the body to the server, which keeps it, then loses the connection; "503" answers 503
    without sending anything. Answers the Upload-Offset of every PATCH sent, as they are sent."""
    send = httpx.HTTPTransport.handle_request
    offsets: list[int] = []

    def handle_request(transport: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.method != "PATCH":
            return send(transport, request)
        offsets.append(int(request.headers["upload-offset"]))
        if len(offsets) not in numbers:
            return send(transport, request)
        if how == "503":
            return httpx.Response(503, request=request)
        body = request.read()
        headers = {name: value for name, value in request.headers.items() if name != "content-length"}
        half = httpx.Request("PATCH", request.url, headers=headers, content=body[: len(body) // 2])
        send(transport, half).close()
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)
    return offsets
