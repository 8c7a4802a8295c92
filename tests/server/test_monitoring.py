"""`GET /v1/monitoring`: admin keys learn where Flower is (the manager links to it); other keys do not."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from veil.core.settings import Settings
from veil.server.main import create_app

FLOWER_URL = "https://flower.example.com/"


@pytest.mark.parametrize("flower_url", [FLOWER_URL, None])
def test_an_admin_key_reads_the_flower_url(
    settings: Settings,
    sessions: sessionmaker[Session],
    queue: RecordingQueue,
    admin: dict[str, str],
    alice: dict[str, str],
    flower_url: str | None,
) -> None:
    configured = settings.model_copy(update={"flower_url": flower_url})
    with TestClient(create_app(configured, queue=queue)) as client:  # type: ignore[arg-type]
        answered = client.get("/v1/monitoring", headers=admin)
        refused = client.get("/v1/monitoring", headers=alice)

    assert answered.status_code == 200
    assert answered.json() == {"flower_url": flower_url}
    assert refused.status_code == 403
