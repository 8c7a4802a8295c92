"""`GET /v1/tasks/events`: the caller's task changes as server-sent events, read as the stream arrives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.server.test_tasks import detections_document, problem, submit, upload_document, upload_photo
from veil.core.database.connection import session_scope
from veil.core.database.models import Task, utc_now
from veil.server.api.routes import task_streams


@pytest.fixture(autouse=True)
def quick_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls fast, and ends every stream after a few seconds, so a test that misses an event fails
    instead of waiting for ever."""
    monkeypatch.setattr(task_streams, "POLL_INTERVAL_S", 0.05)
    monkeypatch.setattr(task_streams, "STREAM_LIFETIME_S", 5.0)


def events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """(event name, data) for each event; ("comment", text) for each comment line."""
    name = "message"
    for line in lines:
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            yield name, json.loads(line.removeprefix("data:"))
            name = "message"


def task_id(client: TestClient, headers: dict[str, str]) -> str:
    response = submit(client, headers, input=upload_photo(client, headers))
    assert response.status_code == 202, response.text
    created: str = response.json()["id"]
    return created


def test_the_stream_sends_recent_tasks_then_each_change(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """GIVEN a task of alice's and one of bob's WHEN alice listens THEN she gets her task, then its
    progress when a worker records it, and never bob's."""
    mine, _ = task_id(client, alice), task_id(client, bob)

    with client.stream("GET", "/v1/tasks/events", headers=alice) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = (event for event in events(response.iter_lines()) if event[0] == "task")
        _, first = next(stream)
        assert (first["id"], first["status"], first["progress"]) == (mine, "queued", 0.0)
        with session_scope(sessions) as session:
            values = {"status": "started", "progress": 0.5, "updated_at": utc_now()}
            session.execute(update(Task).where(Task.id == mine).values(**values))
        _, second = next(stream)
        assert (second["id"], second["status"], second["progress"]) == (mine, "started", 0.5)
        assert second == client.get(f"/v1/tasks/{mine}", headers=alice).json()


def test_a_render_task_is_sent_with_its_document_summary_not_its_boxes(
    client: TestClient, alice: dict[str, str]
) -> None:
    frames = [{"index": index, "detections": [{"box": [1, 2, 3, 4]}] * 5} for index in range(2000)]
    media = {"type": "video", "width": 32, "height": 24}
    document = upload_document(client, alice, detections_document(media=media, frames=frames)).json()["id"]
    parameters = {"detections_file": document}
    render = submit(
        client, alice, operation="render", input=upload_photo(client, alice), parameters=parameters
    )

    with client.stream("GET", "/v1/tasks/events", headers=alice) as response:
        data = next(line for line in response.iter_lines() if line.startswith("data:"))

    sent = json.loads(data.removeprefix("data:"))
    assert sent["id"] == render.json()["id"]
    assert sent["render_document"]["boxes"] == 10_000
    assert len(data) < 2_000


def test_a_quiet_stream_sends_keep_alive_comments(
    client: TestClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_streams, "KEEP_ALIVE_S", 0.1)

    with client.stream("GET", "/v1/tasks/events", headers=alice) as response:
        comments = (text for kind, text in events(response.iter_lines()) if kind == "comment")
        assert "keep-alive" in {next(comments), next(comments)}


def test_the_stream_ends_after_its_lifetime(
    client: TestClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_streams, "STREAM_LIFETIME_S", 0.2)

    response = client.get("/v1/tasks/events", headers=alice)

    assert response.status_code == 200
    assert response.text.startswith(": connected")


def test_the_events_path_is_not_taken_for_a_task_id(client: TestClient) -> None:
    problem(client.get("/v1/tasks/events"), 401)
    problem(client.get("/v1/tasks/archive?ids=task_x"), 401)


def test_the_stream_ends_when_the_key_is_revoked(
    client: TestClient, alice: dict[str, str], admin: dict[str, str]
) -> None:
    with client.stream("GET", "/v1/tasks/events", headers=alice) as response:
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        alice_id = client.get("/v1/keys/me", headers=alice).json()["id"]
        assert client.delete(f"/v1/keys/{alice_id}", headers=admin).status_code == 200
        assert [line for line in lines if line] == []  # the stream ended, with no more events
