"""A real `veil serve` API on a fresh data directory, for the benches that measure it from outside."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from veil.core.db import create_db_engine, migrate, session_scope
from veil.core.keys import create_api_key

__all__ = ["VEIL", "RunningApi", "running_api", "stop"]

VEIL = str(Path(sys.executable).with_name("veil"))


@dataclass(frozen=True)
class RunningApi:
    """Where the API listens, the headers of its one key, its process, and the environment and log that
    workers started beside it should share."""

    url: str
    headers: dict[str, str]
    process: subprocess.Popen[bytes]
    sessions: sessionmaker[Session]
    env: dict[str, str]
    log_path: Path


@contextmanager
def running_api(data_dir: Path) -> Iterator[RunningApi]:
    """Migrates a database in `data_dir`, makes one key, and runs `veil serve --workers 0` until the block
    ends; rate limits are lifted so the bench measures the server, not its limiter."""
    env = {**os.environ, "VEIL_DATA_DIR": str(data_dir), "VEIL_RATE_LIMIT": "1000000/minute"}
    database_url = f"sqlite:///{data_dir / 'veil.db'}"
    migrate(database_url)
    sessions = sessionmaker(create_db_engine(database_url), expire_on_commit=False)
    with session_scope(sessions) as session:
        headers = {"x-api-key": create_api_key(session, name="bench").secret}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [VEIL, "serve", "--port", str(port), "--workers", "0"], env=env, stdout=log, stderr=log
        )
    try:
        _wait_healthy(url)
        yield RunningApi(url, headers, server, sessions, env, log_path)
    finally:
        stop([server])


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all, then up to 30 s each to finish before being killed."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not start")
