"""`veil flower`: refuses to listen beyond loopback without a password; with one, Flower asks for it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live_server import free_port
from tests.services import RedisServer, private_redis

PASSWORD = "correct-horse-battery"


def flower_command(port: int, host: str = "0.0.0.0") -> list[str]:
    return [sys.executable, "-m", "veil.cli.app", "flower", "--host", host, "--port", str(port)]


def clean_env(**values: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("VEIL_", "FLOWER_"))}, **values}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "veil.example.com"])
def test_flower_beyond_loopback_without_a_password_is_refused(tmp_path: Path, host: str) -> None:
    done = subprocess.run(
        flower_command(free_port(), host),
        env=clean_env(VEIL_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert f"Flower would listen on {host} with no authentication" in done.stderr
    assert "VEIL_FLOWER_BASIC_AUTH=user:password" in done.stderr


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with private_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_flower_with_a_password_answers_401_without_it(tmp_path: Path, redis_server: RedisServer) -> None:
    port = free_port()
    env = clean_env(
        VEIL_DATA_DIR=str(tmp_path),
        VEIL_BROKER_URL=redis_server.url,
        VEIL_FLOWER_BASIC_AUTH=f"admin:{PASSWORD}",
    )
    log = tmp_path / "flower.log"
    with log.open("wb") as out:
        process = subprocess.Popen(flower_command(port), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        answered = _first_answer(url, process, log)
        authorized = httpx.get(url, auth=("admin", PASSWORD), timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=20)

    assert answered.status_code == 401
    assert authorized.status_code == 200
    assert "Flower" in authorized.text
    assert PASSWORD not in log.read_text(), "the password stays out of the log"


def _first_answer(url: str, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"veil flower exited with {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"veil flower did not answer within 60 s:\n{log.read_text()}")
