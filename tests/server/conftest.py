"""Fixtures for the API in-process: a fresh data dir, a queue that records what was sent, and keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from veil.core.db import create_db_engine, migrate, session_scope
from veil.core.keys import create_api_key
from veil.core.settings import Settings
from veil.server.main import create_app


@dataclass
class RecordingQueue:
    """Stands in for the broker: keeps the task ids the API enqueued."""

    task_ids: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)

    def enqueue(self, task_id: str) -> None:
        self.task_ids.append(task_id)

    def enqueue_callback(self, task_id: str) -> None:
        self.callbacks.append(task_id)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", rate_limit="1000/minute", cleanup_interval_s=3600)


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    migrate(settings.database_url)
    return sessionmaker(create_db_engine(settings.database_url), expire_on_commit=False)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def client(
    settings: Settings, sessions: sessionmaker[Session], queue: RecordingQueue
) -> Iterator[TestClient]:
    app = create_app(settings, queue=queue)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def make_key(sessions: sessionmaker[Session], name: str = "alice", admin: bool = False) -> dict[str, str]:
    """Headers carrying a new key's secret."""
    with session_scope(sessions) as session:
        secret = create_api_key(session, name=name, admin=admin).secret
    return {"x-api-key": secret}


@pytest.fixture
def alice(sessions: sessionmaker[Session]) -> dict[str, str]:
    return make_key(sessions, "alice")


@pytest.fixture
def bob(sessions: sessionmaker[Session]) -> dict[str, str]:
    return make_key(sessions, "bob")


@pytest.fixture
def admin(sessions: sessionmaker[Session]) -> dict[str, str]:
    return make_key(sessions, "root", admin=True)
