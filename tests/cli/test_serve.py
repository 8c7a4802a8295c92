"""`veil serve` as a real process: first admin key, a worker restarted after SIGKILL, a clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

ADMIN_KEY = re.compile(r"^\s+(veil_\S+)$", re.MULTILINE)
WORKER_STARTED = re.compile(r'msg="worker started" slot=0 pid=(\d+)')
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _until(condition: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path, Path]]:
    """`veil serve` on a free port with one worker; yields the process, its URL and its output files."""
    port = _free_port()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = {**os.environ, "VEIL_DATA_DIR": str(tmp_path / "data")}
    env.pop("VEIL_CONFIG", None)
    command = [sys.executable, "-m", "veil.cli.app", "serve", "--port", str(port), "--workers", "1"]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    try:
        yield process, f"http://127.0.0.1:{port}", stdout, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _healthy(url: str) -> bool | None:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200 or None
    except httpx.TransportError:
        return None


def _ready(stderr: Path, pid: int) -> bool | None:
    return re.search(rf"veil-worker-{pid}@\S+ ready", stderr.read_text()) is not None or None


def _worker_pids(stderr: Path) -> list[int]:
    return [int(pid) for pid in WORKER_STARTED.findall(stderr.read_text())]


def test_serve_makes_an_admin_key_restarts_a_killed_worker_and_stops_cleanly(
    server: tuple[subprocess.Popen[bytes], str, Path, Path],
) -> None:
    """GIVEN a fresh data dir
    WHEN `veil serve` starts, its worker is killed with SIGKILL, then the server gets SIGTERM
    THEN it printed a working admin key, started a new worker, and exited 0 leaving no worker behind."""
    process, url, stdout, stderr = server
    _until(lambda: _healthy(url), 15, "/healthz")
    data = stderr.parent / "data"
    assert f"data directory: {data}  database: sqlite:///{data / 'veil.db'}\n" in stderr.read_text()

    match = ADMIN_KEY.search(stdout.read_text())
    assert match is not None, stdout.read_text()
    assert httpx.get(f"{url}/v1/tasks", headers={"x-api-key": match.group(1)}).status_code == 200
    assert match.group(1) not in stderr.read_text()

    [first] = _until(lambda: _worker_pids(stderr) or None, 5, "the first worker")
    os.kill(first, signal.SIGKILL)
    second = _until(lambda: next((p for p in _worker_pids(stderr) if p != first), None), 5, "a new worker")
    assert "worker exited; restarting it" in stderr.read_text()
    with pytest.raises(ProcessLookupError):
        os.killpg(first, 0)  # its pool process went with it
    _until(lambda: _ready(stderr, second), 10, "the new worker to be ready")

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0, stderr.read_text()
    assert "did not stop in time" not in stderr.read_text()
    with pytest.raises(ProcessLookupError):
        os.killpg(second, 0)  # nothing left of the worker nor of its pool processes
