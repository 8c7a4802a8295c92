"""A real `veil serve` (HTTP server plus a worker process) started once for the end-to-end tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.live_server import veil_serve
from veil.core.database.connection import session_scope
from veil.core.services.keys import create_api_key


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


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("veil-service")
    file_root = data_dir / "files"
    file_root.mkdir()
    env = {
        "VEIL_FILE_ROOT": str(file_root),
        "VEIL_ALLOW_PRIVATE_CALLBACKS": "true",
        "VEIL_CLEANUP_INTERVAL_S": "0.5",
        "VEIL_STALE_TASK_S": "3",
        "VEIL_RATE_LIMIT": "100000/minute",
    }
    with veil_serve(data_dir, env) as running:
        yield Service(running.url, data_dir, file_root, running.process, running.sessions)
