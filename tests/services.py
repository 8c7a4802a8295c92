"""Real backing services for the tests of several machines: a private PostgreSQL database, a private
redis-server on a spare port, a private RabbitMQ virtual host.

Each is made for the test run and removed after. A service that is not there fails the test with what
to install or start, never skips it: the brief of these tests is that they run.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from tests.live_server import free_port

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
RABBITMQ_HOST = "127.0.0.1:5672"


@contextmanager
def private_postgres() -> Iterator[str]:
    """A new, empty database on the PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth); yields its
    `postgresql+psycopg://` URL and drops it (with its connections) after."""
    name = f"veil_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise AssertionError(
            f"these tests need PostgreSQL on 127.0.0.1:5432 with user postgres and trust auth: {exc}"
        ) from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Nothing on disk; and no protected mode, which refuses every address but loopback when there is no
# password: the tests bind only to loopback or to a bridge of their own (tests/cluster/hosts.py).
_PRIVATE = ("--save", "", "--appendonly", "no", "--protected-mode", "no")


@dataclass
class RedisServer:
    """A redis-server this test run started, keeping nothing on disk."""

    port: int
    directory: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError("these tests need redis-server on the PATH (apt-get install redis-server)")
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", self.host, *_PRIVATE],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(self.host, self.port, socket_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not answer within 10 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Kills it and starts it again on the same port: every message it held is gone."""
        self.stop()
        self.start()


@contextmanager
def private_redis(directory: Path, host: str = "127.0.0.1") -> Iterator[RedisServer]:
    """A redis-server listening on `host` (an address of this machine) and a spare port."""
    server = RedisServer(free_port(), directory, host)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _rabbitmqctl(*args: str) -> None:
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        raise AssertionError("these tests need rabbitmqctl and RabbitMQ on 127.0.0.1:5672 (guest/guest)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout}")


@contextmanager
def private_rabbitmq() -> Iterator[str]:
    """A new virtual host on the RabbitMQ at 127.0.0.1:5672 for user guest; yields its `amqp://` URL and
    deletes it (with its queues) after."""
    vhost = f"veil-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ_HOST}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)
