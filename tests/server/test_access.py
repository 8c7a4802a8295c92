"""API keys and the per-key rate limit, as a client meets them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from tests.server.conftest import make_key
from veil.core.database.connection import create_db_engine, session_scope
from veil.core.database.models import ApiKey
from veil.core.services.keys import hash_key, revoke_api_key
from veil.core.settings import Settings
from veil.server.main import create_app


@pytest.fixture
def limited_client(tmp_path: Path, queue: RecordingQueue) -> Iterator[tuple[TestClient, Settings]]:
    settings = Settings(data_dir=tmp_path / "limited", rate_limit="3/minute", cleanup_interval_s=3600)
    with TestClient(create_app(settings, queue=queue), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield client, settings


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "Send your API key in the x-api-key header."),
        ({"x-api-key": "veil_not-a-key"}, "The API key is unknown or revoked."),
    ],
)
def test_requests_without_a_valid_key_get_401_problems(
    client: TestClient, headers: dict[str, str], detail: str
) -> None:
    response = client.get("/v1/tasks", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail


def test_a_revoked_key_is_refused(client: TestClient, sessions: sessionmaker[Session]) -> None:
    headers = make_key(sessions, "temp")
    assert client.get("/v1/tasks", headers=headers).status_code == 200
    with session_scope(sessions) as session:
        key = session.query(ApiKey).filter_by(key_hash=hash_key(headers["x-api-key"])).one()
        revoke_api_key(session, key_id=key.id)

    assert client.get("/v1/tasks", headers=headers).status_code == 401


def test_only_a_hash_of_the_key_is_stored(sessions: sessionmaker[Session], alice: dict[str, str]) -> None:
    secret = alice["x-api-key"]
    with session_scope(sessions) as session:
        stored = [(key.key_hash, key.prefix, key.callback_secret) for key in session.query(ApiKey)]

    assert all(secret not in value for row in stored for value in row)
    assert stored[0][0] == hash_key(secret)


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(
    limited_client: tuple[TestClient, Settings],
) -> None:
    client, settings = limited_client
    sessions = sessionmaker(create_db_engine(settings.database_url))
    alice, bob = make_key(sessions, "alice"), make_key(sessions, "bob")

    answers = [client.get("/v1/tasks", headers=alice).status_code for _ in range(4)]
    refused = client.get("/v1/tasks", headers=alice)

    assert answers == [200, 200, 200, 429]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Rate limit" in refused.json()["detail"]
    assert client.get("/v1/tasks", headers=bob).status_code == 200, "one key's limit never slows another"
