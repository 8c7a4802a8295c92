"""Fixtures for the API in-process: a fresh data dir, a queue that records what was sent, and keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from veil.core.database.connection import session_scope
from veil.core.services.keys import create_api_key
from veil.core.settings import Settings
from veil.server.main import create_app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", rate_limit="1000/minute", cleanup_interval_s=3600)


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
