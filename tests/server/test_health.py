"""Probes and monitoring: `/healthz`, `/readyz` (database, broker, storage, workers) and `/metrics`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from tests.server.conftest import make_key
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, Task, WorkerBeat, utc_now
from veil.core.services.keys import hash_key, revoke_api_key
from veil.core.settings import Settings
from veil.server.main import create_app


def beat(sessions: sessionmaker[Session], name: str, age_s: float) -> None:
    with session_scope(sessions) as session:
        session.add(WorkerBeat(name=name, seen_at=utc_now() - timedelta(seconds=age_s)))


def test_healthz_answers_without_a_key(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_503_until_a_worker_reports(client: TestClient, sessions: sessionmaker[Session]) -> None:
    beat(sessions, "worker-old", age_s=45)

    not_ready = client.get("/readyz")
    beat(sessions, "worker-1", age_s=1)
    ready = client.get("/readyz")

    assert not_ready.status_code == 503
    assert not_ready.headers["content-type"] == "application/problem+json"
    assert set(not_ready.json()["errors"]) == {"workers"}
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok", "workers": 1},
    }


@pytest.fixture
def client_without_broker(settings: Settings, queue: RecordingQueue) -> Iterator[TestClient]:
    # Nothing listens on port 1: the connection is refused at once.
    unreachable = settings.model_copy(update={"broker_url": "amqp://guest:guest@127.0.0.1:1//"})
    with TestClient(create_app(unreachable, queue=queue), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield client


def test_readyz_names_an_unreachable_broker(
    client_without_broker: TestClient, sessions: sessionmaker[Session]
) -> None:
    beat(sessions, "worker-1", age_s=1)

    response = client_without_broker.get("/readyz")

    assert response.status_code == 503
    assert set(response.json()["errors"]) == {"broker"}
    assert "guest" not in response.text, "the broker's credentials stay out of an unauthenticated answer"


def test_readyz_names_storage_it_cannot_write(
    settings: Settings, queue: RecordingQueue, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the storage folder should be")
    broken = settings.model_copy(update={"storage_root": blocked})
    beat(sessions, "worker-1", age_s=1)

    with TestClient(create_app(broken, queue=queue), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        response = client.get("/readyz")

    assert response.status_code == 503
    assert set(response.json()["errors"]) == {"storage"}
    assert str(tmp_path) not in response.text, "paths stay out of an unauthenticated answer"


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_tasks_by_status_and_what_was_processed(
    client: TestClient, sessions: sessionmaker[Session], alice: dict[str, str], admin: dict[str, str]
) -> None:
    now = utc_now()
    with session_scope(sessions) as session:
        key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(alice["x-api-key"]))).one()
        key.files_processed, key.bytes_processed, key.frames_processed = 4, 123_456, 90
        # (status, started, finished); the started task has a fresh heartbeat, so maintenance leaves it.
        rows = [
            ("queued", None, None),
            ("queued", None, None),
            ("started", now - timedelta(seconds=10), None),
            ("completed", now - timedelta(seconds=10), now - timedelta(seconds=9.75)),
            ("failed", now - timedelta(seconds=20), now),
        ]
        for status, started, finished in rows:
            session.add(
                Task(
                    owner_id=key.id,
                    operation="anonymize",
                    status=status,
                    started_at=started,
                    finished_at=finished,
                    heartbeat_at=now if status == "started" else None,
                )
            )
    beat(sessions, "worker-1", age_s=1)

    response = client.get("/metrics", headers=admin)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    by_status = {
        status: samples[("veil_tasks", (("status", status),))]
        for status in ("queued", "started", "completed", "failed", "cancelled")
    }
    assert by_status == {"queued": 2, "started": 1, "completed": 1, "failed": 1, "cancelled": 0}
    assert samples[("veil_queue_depth", ())] == 2
    assert samples[("veil_task_duration_seconds_count", ())] == 2
    assert samples[("veil_task_duration_seconds_sum", ())] == pytest.approx(20.25, abs=0.01)
    assert samples[("veil_task_duration_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("veil_task_duration_seconds_bucket", (("le", "30.0"),))] == 2
    assert samples[("veil_bytes_processed_total", ())] == 123_456
    assert samples[("veil_files_processed_total", ())] == 4
    assert samples[("veil_frames_processed_total", ())] == 90
    assert samples[("veil_workers_alive", ())] == 1


METRICS_TOKEN = "prometheus-scrapes-with-this"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rate_limit="1000/minute",
        cleanup_interval_s=3600,
        metrics_token=SecretStr(METRICS_TOKEN),
    )


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("nobody", 401),
        ("a key that is not admin", 403),
        ("an unknown key", 401),
        ("a wrong bearer token", 401),
        ("the token in another scheme", 401),
        ("an empty bearer token", 401),
        ("the token with more after it", 401),
        ("the token in the query string", 401),
        ("a revoked admin key", 401),
        ("an admin key", 200),
        ("the bearer token", 200),
    ],
)
def test_metrics_answer_only_an_admin_key_or_the_metrics_token(
    client: TestClient,
    sessions: sessionmaker[Session],
    alice: dict[str, str],
    admin: dict[str, str],
    who: str,
    status: int,
) -> None:
    revoked = make_key(sessions, "retired", admin=True)
    with session_scope(sessions) as session:
        key = session.scalars(select(ApiKey).where(ApiKey.name == "retired")).one()
        revoke_api_key(session, key_id=key.id)
    headers = {
        "nobody": {},
        "a key that is not admin": alice,
        "an unknown key": {"x-api-key": "veil_unknown"},
        "a wrong bearer token": {"authorization": "Bearer guess"},
        "the token in another scheme": {"authorization": f"Basic {METRICS_TOKEN}"},
        "an empty bearer token": {"authorization": "Bearer "},
        "the token with more after it": {"authorization": f"Bearer {METRICS_TOKEN}x"},
        "the token in the query string": {},
        "a revoked admin key": revoked,
        "an admin key": admin,
        "the bearer token": {"authorization": f"Bearer {METRICS_TOKEN}"},
    }[who]
    query = {"token": METRICS_TOKEN, "access_token": METRICS_TOKEN}

    response = client.get("/metrics", headers=headers, params=query if who.endswith("query string") else None)

    assert response.status_code == status, response.text
    if status == 200:
        assert "veil_tasks" in response.text
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert "veil_" not in response.text


def test_without_a_metrics_token_no_bearer_token_reads_metrics(
    tmp_path: Path, sessions: sessionmaker[Session], queue: RecordingQueue
) -> None:
    untokened = Settings(data_dir=tmp_path / "data", metrics_token=SecretStr(""), cleanup_interval_s=3600)
    with TestClient(create_app(untokened, queue=queue)) as client:  # type: ignore[arg-type]
        response = client.get("/metrics", headers={"authorization": "Bearer "})

    assert response.status_code == 401
