"""A real `veil serve` (HTTP server plus a worker process) started once for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from veil.core.db import create_db_engine, migrate, session_scope
from veil.core.keys import create_api_key

STARTUP_TIMEOUT_S = 90.0


@dataclass
class Service:
    url: str
    data_dir: Path
    file_root: Path
    process: subprocess.Popen[bytes]
    sessions: sessionmaker[Session]

    def new_key(self, name: str) -> tuple[dict[str, str], str]:
        """Headers with a new key, and the key's callback secret."""
        with session_scope(self.sessions) as session:
            created = create_api_key(session, name=name)
            return {"x-api-key": created.secret}, created.record.callback_secret

    def worker_pids(self) -> list[int]:
        """The worker processes `veil serve` runs (its children)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    def wait_for_task(self, headers: dict[str, str], task_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            task: dict[str, Any] = httpx.get(f"{self.url}/v1/tasks/{task_id}", headers=headers).json()
            if task["status"] in {"completed", "failed", "cancelled"}:
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} did not finish in {timeout_s} s: {task}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("veil-service")
    file_root = data_dir / "files"
    file_root.mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "VEIL_DATA_DIR": str(data_dir),
        "VEIL_FILE_ROOT": str(file_root),
        "VEIL_ALLOW_PRIVATE_CALLBACKS": "true",
        "VEIL_CLEANUP_INTERVAL_S": "0.5",
        "VEIL_STALE_TASK_S": "3",
        "VEIL_RATE_LIMIT": "100000/minute",
    }
    migrate(f"sqlite:///{data_dir / 'veil.db'}")
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("veil")), "serve", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        engine = create_db_engine(f"sqlite:///{data_dir / 'veil.db'}")
        yield Service(url, data_dir, file_root, process, sessionmaker(engine, expire_on_commit=False))
        engine.dispose()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
