"""Veil as on several machines, on this one: `veil serve --role api` processes, `veil worker` and
`veil scheduler` processes, each started as its own process on a private PostgreSQL database and a
private broker (tests/services.py), sharing only what their settings name.

A cluster is started once per module; tests add processes to it and stop what they added.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from tests.helpers import noise_image
from tests.live_server import free_port
from veil.core.database.connection import create_db_engine, migrate, session_scope
from veil.core.database.models import FINAL_STATUSES, StoredFile, Task
from veil.core.services.keys import create_api_key

START_TIMEOUT_S = 60.0
T = TypeVar("T")


def until(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def photo_png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(64, 48, seed=seed)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Cluster:
    """Processes sharing one database, broker and data folder (for storage), started on demand."""

    directory: Path
    env: dict[str, str]
    database_url: str
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        migrate(self.database_url)
        self.engine = create_db_engine(self.database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _start(self, name: str, args: list[str], extra_env: dict[str, str] | None) -> Process:
        log = self.directory / f"{name}-{len(self.processes)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "veil.cli.app", *args],
                # Nothing of the environment running the tests leaks in: only what the cluster sets.
                env={
                    **{name: value for name, value in os.environ.items() if not name.startswith("VEIL_")},
                    **self.env,
                    **(extra_env or {}),
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def api(self, extra_env: dict[str, str] | None = None) -> Process:
        """`veil serve --role api` on a free port, once it answers /healthz."""
        port = free_port()
        process = self._start("api", ["serve", "--role", "api", "--port", str(port)], extra_env)
        process.url = f"http://127.0.0.1:{port}"
        until(lambda: _answers(process), START_TIMEOUT_S, f"the API process to answer:\n{process.output()}")
        return process

    def worker(self, queues: str = "photo,video,gpu") -> Process:
        """`veil worker --queues ...`, once Celery says it is ready."""
        process = self._start("worker", ["worker", "--queues", queues], None)
        until(
            lambda: _alive(process) and ("ready." in process.output() or None),
            START_TIMEOUT_S,
            f"the worker to be ready:\n{process.output()}",
        )
        return process

    def scheduler(self) -> Process:
        process = self._start("scheduler", ["scheduler"], None)
        until(
            lambda: _alive(process) and ("scheduler started" in process.output() or None),
            START_TIMEOUT_S,
            f"the scheduler to start:\n{process.output()}",
        )
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.engine.dispose()

    def new_key(self, name: str) -> dict[str, str]:
        with session_scope(self.sessions) as session:
            return {"x-api-key": create_api_key(session, name=name).secret}

    def submit_photo(self, api: Process, key: dict[str, str], *, seed: int = 0, **parameters: Any) -> str:
        """Uploads a small photo and submits a face detection task on it; returns the task id."""
        uploaded = httpx.post(f"{api.url}/v1/files", headers=key, files={"file": ("p.png", photo_png(seed))})
        assert uploaded.status_code == 201, uploaded.text
        body = {
            "operation": "detect",
            "input": uploaded.json()["id"],
            "parameters": {"detectors": ["face"], **parameters},
        }
        submitted = httpx.post(f"{api.url}/v1/tasks", headers=key, json=body)
        assert submitted.status_code == 202, submitted.text
        task_id: str = submitted.json()["id"]
        return task_id

    def wait_finished(self, task_ids: list[str], timeout_s: float = 60.0) -> list[Task]:
        """The tasks once all are final, read from the database (no request counts against a limit)."""

        def finished() -> list[Task] | None:
            with self.sessions() as session:
                tasks = list(session.scalars(select(Task).where(Task.id.in_(task_ids))))
            return tasks if all(task.status in FINAL_STATUSES for task in tasks) else None

        return until(finished, timeout_s, f"tasks {task_ids} to finish")

    def outputs(self, task_id: str) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(StoredFile.name).where(StoredFile.task_id == task_id)))


def _alive(process: Process) -> bool:
    if process.popen.poll() is not None:
        raise AssertionError(f"{process.name} exited with {process.popen.returncode}:\n{process.output()}")
    return True


def _answers(process: Process) -> bool | None:
    _alive(process)
    try:
        return httpx.get(f"{process.url}/healthz", timeout=2).status_code == 200 or None
    except httpx.TransportError:
        return None


def cluster_env(directory: Path, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    return {
        "VEIL_DATA_DIR": str(directory / "data"),
        "VEIL_DATABASE_URL": database_url,
        "VEIL_BROKER_URL": broker_url,
        "VEIL_CLEANUP_INTERVAL_S": "0.5",
        **extra,
    }


def log_fields(text: str, message: str) -> list[dict[str, str]]:
    """The fields of each `key=value` log line (as `veil.cli.logs` writes them) with `msg="<message>"`."""
    lines = [line for line in text.splitlines() if f'msg="{message}"' in line]
    pairs = [re.findall(r'(\w+)=("[^"]*"|\S+)', line) for line in lines]
    return [{key: value.strip('"') for key, value in found} for found in pairs]
