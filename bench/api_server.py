"""A real `veil serve` API on a fresh data directory, for the benches that measure it from outside: on one
machine's defaults (SQLite, embedded broker), or as several `veil serve --role api` processes on a
PostgreSQL database and a Redis made for the run (`services`)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis
from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.connection import create_db_engine, migrate, session_scope
from veil.core.services.keys import create_api_key

__all__ = ["VEIL", "RunningApi", "running_api", "services", "stop"]

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
    urls: tuple[str, ...] = ()
    """Every API process's address (several with `processes`); `url` is the first."""
    processes: tuple[subprocess.Popen[bytes], ...] = ()


@contextmanager
def running_api(
    data_dir: Path, *, env_extra: dict[str, str] | None = None, processes: int = 0
) -> Iterator[RunningApi]:
    """Migrates the database (SQLite in `data_dir`, unless `env_extra` names VEIL_DATABASE_URL), makes one
    key, and runs `veil serve --workers 0` until the block ends, or with `processes`, that many
    `veil serve --role api`; rate limits are lifted so the bench measures the server, not its limiter."""
    env = {
        **os.environ,
        "VEIL_DATA_DIR": str(data_dir),
        "VEIL_RATE_LIMIT": "1000000/minute",
        **(env_extra or {}),
    }
    database_url = env.get("VEIL_DATABASE_URL") or f"sqlite:///{data_dir / 'veil.db'}"
    migrate(database_url)
    sessions = sessionmaker(create_db_engine(database_url), expire_on_commit=False)
    with session_scope(sessions) as session:
        headers = {"x-api-key": create_api_key(session, name="bench").secret}
    role = ["--role", "api"] if processes else ["--workers", "0"]
    ports = [_free_port() for _ in range(max(1, processes))]
    log_path = data_dir / "serve.log"
    with log_path.open("wb") as log:
        servers = [
            subprocess.Popen([VEIL, "serve", "--port", str(port), *role], env=env, stdout=log, stderr=log)
            for port in ports
        ]
    urls = tuple(f"http://127.0.0.1:{port}" for port in ports)
    try:
        for url in urls:
            _wait_healthy(url)
        yield RunningApi(urls[0], headers, servers[0], sessions, env, log_path, urls, tuple(servers))
    finally:
        stop(servers)


@contextmanager
def services(data_dir: Path) -> Iterator[dict[str, str]]:
    """A PostgreSQL database made for the run (127.0.0.1:5432, user postgres, trust auth) and a
    redis-server on a free port; yields the settings that point Veil at them (broker and rate limits in
    Redis), and drops both after."""
    name = f"veil_bench_{uuid.uuid4().hex[:12]}"
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("this bench needs redis-server on the PATH")
    port = _free_port()
    redis_server = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
    )
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            _wait_redis(port)
            yield {
                "VEIL_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
                "VEIL_BROKER_URL": f"redis://127.0.0.1:{port}/0",
                "VEIL_RATE_LIMIT_STORAGE": f"redis://127.0.0.1:{port}/1",
            }
        finally:
            redis_server.kill()
            redis_server.wait()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_redis(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"redis-server on port {port} did not start")


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
