"""Resumable (TUS 1.0.0) uploads: create, send in parts, resume from the offset, and end as a stored file."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from tests.photo_factory import png_bomb
from tests.server.test_files import image_bytes, problem
from tests.server.test_tasks import detections_document
from veil.core.database.connection import session_scope
from veil.core.database.leases import take_lease
from veil.core.database.models import Lease, StoredFile, Upload, utc_now
from veil.core.services.maintenance import run_maintenance
from veil.core.settings import Settings
from veil.core.storage import LocalStorage

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"


def metadata(filename: str) -> str:
    return "filename " + base64.b64encode(filename.encode()).decode()


def create(client: TestClient, headers: dict[str, str], length: int, filename: str = "photo.png") -> str:
    response = client.post(
        "/v1/uploads",
        headers={**headers, **TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(filename)},
    )
    assert response.status_code == 201, response.text
    assert response.headers["tus-resumable"] == "1.0.0"
    location: str = response.headers["location"]
    assert location.startswith("/v1/uploads/upload_")
    return location


def patch(client: TestClient, headers: dict[str, str], location: str, offset: int, body: Any) -> Any:
    patch_headers = {**headers, **TUS, "Upload-Offset": str(offset), "Content-Type": OFFSET_STREAM}
    return client.patch(location, headers=patch_headers, content=body)


def head_offset(client: TestClient, headers: dict[str, str], location: str) -> int:
    response = client.head(location, headers={**headers, **TUS})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"])


def upload_files(settings: Settings) -> list[str]:
    folder = settings.storage_dir / "uploads"
    return sorted(str(path) for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def test_options_tells_what_the_server_supports_without_a_key(client: TestClient, settings: Settings) -> None:
    response = client.options("/v1/uploads")

    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-extension"] == "creation"
    assert response.headers["tus-max-size"] == str(settings.max_upload_bytes)


def test_an_upload_resumes_from_the_offset_and_becomes_a_file(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    """GIVEN an upload whose first part arrived WHEN the client asks the offset and sends the rest
    THEN the bytes become a stored file typed from its content, under the name from the metadata."""
    content = image_bytes("PNG", 320, 240)
    location = create(client, alice, len(content), "holiday.jpg")
    assert head_offset(client, alice, location) == 0
    split = 5000

    first = patch(client, alice, location, 0, content[:split])

    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == str(split)
    assert "veil-file-id" not in first.headers
    assert head_offset(client, alice, location) == split
    state = client.get(location, headers=alice).json()
    assert (state["offset"], state["length"], state["filename"], state["file"]) == (
        split,
        len(content),
        "holiday.jpg",
        None,
    )

    rest = patch(client, alice, location, head_offset(client, alice, location), content[split:])

    assert rest.status_code == 204, rest.text
    assert rest.headers["upload-offset"] == str(len(content))
    file_id = rest.headers["veil-file-id"]
    stored = client.get(f"/v1/files/{file_id}", headers=alice).json()
    assert (stored["name"], stored["type"], stored["properties"]["size"]) == (
        "holiday.jpg",
        "image/png",
        len(content),
    )
    assert client.get(f"/v1/files/{file_id}/content", headers=alice).content == content
    assert client.get(location, headers=alice).json()["file"] == stored
    assert upload_files(settings) == []  # the partial bytes were moved, not copied
    problem(patch(client, alice, location, len(content), b"more"), 409)


def test_a_streamed_patch_body_is_taken_as_it_arrives(client: TestClient, alice: dict[str, str]) -> None:
    content = image_bytes("PNG", 200, 150)
    location = create(client, alice, len(content))

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    response = patch(client, alice, location, 0, chunks())

    assert response.status_code == 204, response.text
    assert response.headers["veil-file-id"].startswith("file_")


def test_a_patch_at_the_wrong_offset_is_a_conflict(client: TestClient, alice: dict[str, str]) -> None:
    content = image_bytes()
    location = create(client, alice, len(content))
    assert patch(client, alice, location, 0, content[:100]).status_code == 204

    body = problem(patch(client, alice, location, 0, content[:100]), 409)

    assert "100" in body["detail"]
    assert head_offset(client, alice, location) == 100


def test_an_upload_over_the_limit_is_refused_at_creation(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    response = client.post(
        "/v1/uploads",
        headers={**alice, **TUS, "Upload-Length": str(settings.max_upload_bytes + 1)},
    )

    problem(response, 413)


def test_bytes_past_the_announced_length_are_refused_and_not_kept(
    client: TestClient, alice: dict[str, str]
) -> None:
    content = image_bytes()
    location = create(client, alice, 10)

    problem(patch(client, alice, location, 0, content[:11]), 413)

    assert head_offset(client, alice, location) == 0


def test_content_that_is_no_photo_is_refused_and_nothing_is_kept(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    content = b"%PDF-1.7\n" + b"x" * 6000
    location = create(client, alice, len(content), "report.pdf")

    body = problem(patch(client, alice, location, 0, content), 415)

    assert "PDF" in body["detail"] or "not a photo" in body["detail"]
    assert upload_files(settings) == []
    assert client.head(location, headers={**alice, **TUS}).status_code == 404
    assert client.get("/v1/files", headers=alice).json()["count"] == 0


def test_a_photo_over_the_pixel_limit_is_refused_when_complete_and_nothing_is_kept(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    bomb = png_bomb(12_000)
    location = create(client, alice, len(bomb), "bomb.png")
    assert patch(client, alice, location, 0, bomb[:100_000]).status_code == 204

    body = problem(patch(client, alice, location, 100_000, bomb[100_000:]), 422)

    assert "12000x12000 pixels" in body["detail"]
    assert upload_files(settings) == []
    assert client.head(location, headers={**alice, **TUS}).status_code == 404
    assert client.get("/v1/files", headers=alice).json()["count"] == 0


@pytest.mark.parametrize("valid", [True, False])
def test_a_render_document_is_checked_when_complete(
    client: TestClient, alice: dict[str, str], settings: Settings, valid: bool
) -> None:
    frames = [{"index": 0, "detections": [{"box": [1, 2, 3, 4] if valid else [3, 2, 1, 4]}]}]
    document = json.dumps(detections_document(frames=frames)).encode()
    location = create(client, alice, len(document), "boxes.json")

    response = patch(client, alice, location, 0, document)

    if valid:
        assert response.status_code == 204, response.text
        (stored,) = client.get("/v1/files", headers=alice).json()["results"]
        assert (stored["type"], stored["properties"]["labels"]) == ("application/json", {"face": 1})
    else:
        assert "frames.0.detections.0.box" in problem(response, 422)["detail"]
        assert upload_files(settings) == []
        assert client.head(location, headers={**alice, **TUS}).status_code == 404


def test_content_is_typed_once_its_first_bytes_are_in(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    location = create(client, alice, 100_000, "big.bin")

    problem(patch(client, alice, location, 0, b"\0" * 8192), 415)

    assert upload_files(settings) == []


def test_another_keys_upload_is_not_found(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], admin: dict[str, str]
) -> None:
    content = image_bytes()
    location = create(client, alice, len(content))

    for other in (bob, admin):
        assert client.head(location, headers={**other, **TUS}).status_code == 404
        problem(patch(client, other, location, 0, content), 404)
        problem(client.get(location, headers=other), 404)
    assert head_offset(client, alice, location) == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Tus-Resumable": "0.2.2", "Upload-Offset": "0", "Content-Type": OFFSET_STREAM}, 412),
        ({"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "image/png"}, 415),
        ({"Tus-Resumable": "1.0.0", "Content-Type": OFFSET_STREAM}, 422),
        ({"Tus-Resumable": "1.0.0", "Upload-Offset": "-1", "Content-Type": OFFSET_STREAM}, 422),
    ],
)
def test_a_malformed_patch_is_refused(
    client: TestClient, alice: dict[str, str], headers: dict[str, str], status: int
) -> None:
    location = create(client, alice, 100)

    response = client.patch(location, headers={**alice, **headers}, content=b"abc")

    problem(response, status)
    assert head_offset(client, alice, location) == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Tus-Resumable": "1.0.0"}, 422),  # no Upload-Length
        ({"Tus-Resumable": "1.0.0", "Upload-Length": "0"}, 422),
        ({"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": "filename !!"}, 422),
        ({"Tus-Resumable": "2.0.0", "Upload-Length": "10"}, 412),
        ({"Upload-Length": "10"}, 422),
    ],
)
def test_a_malformed_creation_is_refused(
    client: TestClient, alice: dict[str, str], headers: dict[str, str], status: int
) -> None:
    problem(client.post("/v1/uploads", headers={**alice, **headers}), status)


def test_an_upload_without_a_name_is_called_upload(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post("/v1/uploads", headers={**alice, **TUS, "Upload-Length": "10"})

    assert client.get(response.headers["location"], headers=alice).json()["filename"] == "upload"


def test_uploads_expire_with_their_bytes(
    client: TestClient, alice: dict[str, str], settings: Settings, sessions: sessionmaker[Session]
) -> None:
    content = image_bytes()
    location = create(client, alice, len(content))
    patch(client, alice, location, 0, content[:50])
    assert upload_files(settings)
    with session_scope(sessions) as session:
        session.execute(update(Upload).values(expires_at=utc_now()))

    assert client.head(location, headers={**alice, **TUS}).status_code == 404
    run_maintenance(sessions, LocalStorage(settings.storage_dir), RecordingQueue(), settings)  # type: ignore[arg-type]

    assert upload_files(settings) == []
    with sessions() as session:
        assert session.query(Upload).count() == 0


def test_a_dropped_connection_keeps_what_arrived(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    """GIVEN a PATCH whose client goes away after the first part WHEN the client asks the offset THEN the
    part that arrived is kept, and the upload finishes from there."""
    content = image_bytes("PNG", 200, 150)
    location = create(client, alice, len(content))
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": content[:6000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []
    headers = {**alice, **TUS, "upload-offset": "0", "content-type": OFFSET_STREAM}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": location,
        "raw_path": location.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]

    assert head_offset(client, alice, location) == 6000
    rest = patch(client, alice, location, 6000, content[6000:])
    assert rest.status_code == 204, rest.text
    assert client.get(f"/v1/files/{rest.headers['veil-file-id']}/content", headers=alice).content == content


def test_a_second_patch_while_one_is_running_is_a_conflict_until_its_lock_expires(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    """GIVEN another API process holding the upload's lock (a lease row), as during its PATCH
    WHEN a PATCH arrives here, and again once that process died and its lock expired
    THEN the first is a 409 and the second appends; the lock is given up after the request."""
    location = create(client, alice, 100)
    name = f"upload:{location.rsplit('/', 1)[-1]}"
    assert take_lease(sessions, name=name, holder="another-process", ttl_s=60)

    body = problem(patch(client, alice, location, 0, b"abc"), 409)
    with session_scope(sessions) as session:
        session.execute(
            update(Lease).where(Lease.name == name).values(expires_at=utc_now() - timedelta(seconds=1))
        )
    appended = patch(client, alice, location, 0, b"abc")

    assert "Another request" in body["detail"]
    assert appended.status_code == 204
    with sessions() as session:
        assert session.scalar(select(Lease.name).where(Lease.name == name)) is None


def test_the_file_of_a_finished_upload_expires_on_its_own(
    client: TestClient, alice: dict[str, str], settings: Settings, sessions: sessionmaker[Session]
) -> None:
    content = image_bytes()
    location = create(client, alice, len(content))
    file_id = patch(client, alice, location, 0, content).headers["veil-file-id"]
    with session_scope(sessions) as session:
        session.execute(update(StoredFile).values(expires_at=utc_now()))

    run_maintenance(sessions, LocalStorage(settings.storage_dir), RecordingQueue(), settings)  # type: ignore[arg-type]

    assert client.get(f"/v1/files/{file_id}", headers=alice).status_code == 404
    assert client.get(location, headers=alice).json()["file"] is None
    with sessions() as session:
        assert session.scalars(select(Upload.file_id)).all() == [None]
