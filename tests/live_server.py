"""A real `veil serve` in a subprocess, for the end-to-end and browser tests."""

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

from veil.core.database.connection import create_db_engine, migrate

STARTUP_TIMEOUT_S = 90.0


@dataclass
class Running:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    sessions: sessionmaker[Session]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def veil_serve(data_dir: Path, env: dict[str, str]) -> Iterator[Running]:
    """`veil serve --workers 1` on a free port with its data in `data_dir` and `env` added to the
    environment; yields once /readyz answers 200 (a worker is alive), stops it with SIGTERM after."""
    database_url = f"sqlite:///{data_dir / 'veil.db'}"
    migrate(database_url)
    port = free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("veil")), "serve", "--port", str(port), "--workers", "1"],
            env={**os.environ, "VEIL_DATA_DIR": str(data_dir), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    engine = create_db_engine(database_url)
    try:
        _wait_ready(url, process, log)
        yield Running(url, data_dir, process, sessionmaker(engine, expire_on_commit=False))
    finally:
        engine.dispose()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"veil serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"veil serve was not ready in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")
