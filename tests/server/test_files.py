"""The files API as a client sees it: upload, typing from content, limits, isolation, download, listing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.engine.video_factory import make_audio_only, make_video
from tests.helpers import noise_image
from tests.photo_factory import png_bomb
from veil.core.database.connection import session_scope
from veil.core.database.models import StoredFile, utc_now
from veil.core.settings import Settings

PROBLEM = "application/problem+json"


def image_bytes(image_format: str = "PNG", width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(width, height)).save(buffer, format=image_format)
    return buffer.getvalue()


BOUNDARY = "veil-test-boundary"
END = f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(client: TestClient, headers: dict[str, str], name: str, content: bytes) -> Any:
    files = {"file": (name, content, "application/octet-stream")}
    return client.post("/v1/files", headers=headers, files=files)


def raw_upload(client: TestClient, headers: dict[str, str], body: Any) -> Any:
    """Posts a hand-made multipart body (bytes, or an iterator of bytes, which is sent without a length)."""
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return client.post("/v1/files", headers={**headers, "content-type": content_type}, content=body)


def part_head(filename: str) -> bytes:
    """The start of the file part, the name in raw UTF-8 (httpx would percent-encode odd characters)."""
    disposition = f'Content-Disposition: form-data; name="file"; filename="{filename}"'
    return f"--{BOUNDARY}\r\n{disposition}\r\n\r\n".encode()


def stored_files(settings: Settings) -> list[Path]:
    return sorted(path for path in settings.storage_dir.rglob("*") if path.is_file())


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def test_an_upload_is_typed_from_its_content_not_its_name(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    content = image_bytes("PNG", 64, 48)

    response = upload(client, alice, "holiday.jpg", content)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("file_")
    assert (body["name"], body["type"], body["task_id"]) == ("holiday.jpg", "image/png", None)
    assert body["properties"] == {"size": len(content), "width": 64, "height": 48}
    lifespan = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"])
    assert abs(lifespan - timedelta(seconds=settings.file_lifespan_s)) < timedelta(seconds=5)
    assert client.get(f"/v1/files/{body['id']}", headers=alice).json() == body
    (stored,) = stored_files(settings)
    assert stored.read_bytes() == content


def test_a_video_upload_reports_its_video_properties(
    client: TestClient, alice: dict[str, str], tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "clip.mp4", frames=10, fps=25, audio=None)

    body = upload(client, alice, "clip.bin", clip.path.read_bytes()).json()

    assert body["type"] == "video/mp4"
    assert body["properties"] == {
        "size": clip.path.stat().st_size,
        "width": 320,
        "height": 240,
        "duration": pytest.approx(0.4, abs=0.05),
        "fps": 25.0,
        "frame_count": 10,
    }


@pytest.mark.parametrize(
    ("client_name", "stored_name"),
    [
        ("../../etc/photo.png", "photo.png"),
        ("C:\\Users\\me\\Pictures\\photo.png", "photo.png"),
        ("bell\x07and\x7fdelete.png", "bellanddelete.png"),
        ("crème brûlée.png", "crème brûlée.png"),
        ("..", "upload"),
        ("", "upload"),
        ("é" * 300 + ".png", "é" * 73 + ".png"),  # 150 bytes of UTF-8 at most
        ("a" * 300 + ".a-very-long-extension", "a" * 150),
    ],
)
def test_the_stored_name_is_a_safe_basename(
    client: TestClient, alice: dict[str, str], settings: Settings, client_name: str, stored_name: str
) -> None:
    body = raw_upload(client, alice, part_head(client_name) + image_bytes() + END).json()

    assert body["name"] == stored_name
    (stored,) = stored_files(settings)
    assert stored.name == stored_name
    assert stored.parent.parent.parent == settings.storage_dir


def test_content_that_is_no_photo_or_video_is_refused_with_415(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    body = problem(upload(client, alice, "photo.jpg", b"this is plain text, whatever the name says"), 415)

    assert body["title"] == "Unsupported Media Type"
    assert "The content is text" in body["errors"]["file"][0]
    assert stored_files(settings) == []


def test_a_photo_declaring_more_pixels_than_the_limit_is_refused_with_422_and_not_kept(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    bomb = png_bomb(12_000)  # 410 KB of PNG: 432 MB once decoded

    body = problem(upload(client, alice, "bomb.png", bomb), 422)

    assert body["detail"] == (
        "The photo is 12000x12000 pixels (144,000,000), over the limit of 100,000,000 pixels; "
        "send a smaller one."
    )
    assert body["errors"] == {"file": [body["detail"]]}
    assert stored_files(settings) == []
    assert client.get("/v1/files", headers=alice).json()["count"] == 0


@pytest.mark.parametrize(
    ("make", "refusal"),
    [
        (
            lambda folder: make_audio_only(folder / "sound.m4a"),
            "The file holds audio only and no video stream",
        ),
        (
            lambda folder: _cut_in_half(make_video(folder / "clip.mkv", frames=100, audio=None).path),
            "The video is cut short: it declares 4.0 s",
        ),
    ],
)
def test_a_video_no_worker_could_process_is_refused_at_upload_saying_why(
    client: TestClient, alice: dict[str, str], settings: Settings, tmp_path: Path, make: Any, refusal: str
) -> None:
    body = problem(upload(client, alice, "clip.bin", make(tmp_path).read_bytes()), 422)

    assert body["detail"].startswith(refusal)
    assert stored_files(settings) == []


def _cut_in_half(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("size", [20_000, 200_000])  # within and beyond what Content-Length alone refuses
def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(
    client: TestClient, alice: dict[str, str], settings: Settings, sessions: sessionmaker[Session], size: int
) -> None:
    settings.max_upload_bytes = 10_000
    content = image_bytes("BMP", 200, 100)[:size].ljust(size, b"\0")

    body = problem(upload(client, alice, "big.bmp", content), 413)

    assert "10000 bytes" in body["detail"]
    assert stored_files(settings) == []
    assert client.get("/v1/files", headers=alice).json()["count"] == 0


def test_a_streamed_upload_without_content_length_is_cut_at_the_limit(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    settings.max_upload_bytes = 10_000

    def body() -> Iterator[bytes]:
        yield part_head("a.png") + image_bytes("PNG")
        for _ in range(100):
            yield bytes(1000)
        yield END

    response = raw_upload(client, alice, body())

    problem(response, 413)
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    ("request_args", "field"),
    [
        ({"files": {"upload": ("a.png", image_bytes(), "image/png")}}, "file"),
        ({"json": {"file": "a.png"}}, "file"),
        ({"data": {"file": "a.png"}}, "file"),
    ],
)
def test_a_request_without_a_file_field_is_refused_with_422(
    client: TestClient, alice: dict[str, str], request_args: dict[str, Any], field: str
) -> None:
    body = problem(client.post("/v1/files", headers=alice, **request_args), 422)

    assert field in body["errors"]


def test_a_malformed_multipart_body_is_refused_with_400(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post(
        "/v1/files",
        headers={**alice, "content-type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\n\x89PNG\r\n\x1a\n',
    )

    problem(response, 400)


def test_every_route_needs_a_key(client: TestClient) -> None:
    for method, url in [
        ("POST", "/v1/files"),
        ("GET", "/v1/files"),
        ("GET", "/v1/files/file_x"),
        ("GET", "/v1/files/file_x/content"),
        ("DELETE", "/v1/files/file_x"),
    ]:
        body = problem(client.request(method, url), 401)
        assert "x-api-key" in body["detail"]


def test_another_key_cannot_see_download_or_delete_a_file(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], admin: dict[str, str]
) -> None:
    file_id = upload(client, alice, "a.png", image_bytes()).json()["id"]

    for method, url in [
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ]:
        body = problem(client.request(method, url, headers=bob), 404)
        assert body["detail"] == f"File with id {file_id} not found."
    assert client.get("/v1/files", headers=bob).json()["count"] == 0
    assert client.get(f"/v1/files/{file_id}", headers=admin).status_code == 200
    assert client.get(f"/v1/files/{file_id}", headers=alice).status_code == 200


def test_the_content_is_downloaded_with_its_type_and_name(client: TestClient, alice: dict[str, str]) -> None:
    content = image_bytes("JPEG")
    file_id = upload(client, alice, "street.jpg", content).json()["id"]

    response = client.get(f"/v1/files/{file_id}/content", headers=alice)

    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-disposition"] == 'attachment; filename="street.jpg"'
    assert response.headers["accept-ranges"] == "bytes"


def test_range_requests_answer_part_of_the_content(
    client: TestClient, alice: dict[str, str], tmp_path: Path
) -> None:
    content = make_video(tmp_path / "clip.mp4", frames=10, audio=None).path.read_bytes()
    url = f"/v1/files/{upload(client, alice, 'clip.mp4', content).json()['id']}/content"

    partial = client.get(url, headers={**alice, "range": "bytes=100-199"})
    tail = client.get(url, headers={**alice, "range": "bytes=-50"})
    beyond = client.get(url, headers={**alice, "range": f"bytes={len(content)}-"})
    malformed = client.get(url, headers={**alice, "range": "pages=1-2"})

    assert partial.status_code == 206
    assert partial.headers["content-range"] == f"bytes 100-199/{len(content)}"
    assert partial.content == content[100:200]
    assert (tail.status_code, tail.content) == (206, content[-50:])
    problem(beyond, 416)
    assert beyond.headers["content-range"] == f"bytes */{len(content)}"
    problem(malformed, 400)


def test_a_deleted_file_is_gone_with_its_bytes(
    client: TestClient, alice: dict[str, str], settings: Settings
) -> None:
    file_id = upload(client, alice, "a.png", image_bytes()).json()["id"]

    response = client.delete(f"/v1/files/{file_id}", headers=alice)

    assert response.status_code == 204
    assert response.content == b""
    problem(client.get(f"/v1/files/{file_id}", headers=alice), 404)
    problem(client.delete(f"/v1/files/{file_id}", headers=alice), 404)
    assert stored_files(settings) == []


def test_an_expired_file_is_not_found(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    file_id = upload(client, alice, "a.png", image_bytes()).json()["id"]
    with session_scope(sessions) as session:
        session.execute(
            update(StoredFile)
            .where(StoredFile.id == file_id)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )

    problem(client.get(f"/v1/files/{file_id}", headers=alice), 404)
    assert client.get("/v1/files", headers=alice).json()["count"] == 0


@pytest.fixture
def three_files(client: TestClient, alice: dict[str, str]) -> dict[str, dict[str, Any]]:
    """beach.png (small), city.jpg and forest.png (larger), uploaded in that order."""
    return {
        name: upload(client, alice, name, image_bytes(image_format, width, 48)).json()
        for name, image_format, width in [
            ("beach.png", "PNG", 16),
            ("city.jpg", "JPEG", 64),
            ("forest.png", "PNG", 64),
        ]
    }


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["results"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["forest.png", "city.jpg", "beach.png"]),  # newest first
        ({"sort": "name"}, ["beach.png", "city.jpg", "forest.png"]),
        ({"sort": "-name"}, ["forest.png", "city.jpg", "beach.png"]),
        ({"sort": "type,-name"}, ["city.jpg", "forest.png", "beach.png"]),
        ({"sort": "name", "page_size": 2}, ["beach.png", "city.jpg"]),
        ({"sort": "name", "page_size": 2, "page": 2}, ["forest.png"]),
        ({"sort": "name", "page_size": 2, "page": 3}, []),
        ({"search": "EST", "sort": "name"}, ["forest.png"]),
        ({"search": "jpeg"}, ["city.jpg"]),  # search looks in the type too
        ({"search": "%"}, []),
        ({"type": "image/png", "sort": "name"}, ["beach.png", "forest.png"]),
        ({"name": "city.jpg"}, ["city.jpg"]),
        ({"filter": json.dumps({"==": [{"var": "type"}, "image/jpeg"]})}, ["city.jpg"]),
        ({"filter": json.dumps({"in": ["ea", {"var": "name"}]})}, ["beach.png"]),
        (
            {"filter": json.dumps({"==": [{"var": "task_id"}, None]}), "sort": "name", "page_size": 1},
            ["beach.png"],
        ),
    ],
)
def test_listing_pages_sorts_searches_and_filters(
    client: TestClient,
    alice: dict[str, str],
    three_files: dict[str, dict[str, Any]],
    params: dict[str, Any],
    expected: list[str],
) -> None:
    response = client.get("/v1/files", headers=alice, params=params)

    assert names(response) == expected
    body = response.json()
    assert (body["page"], body["page_size"]) == (params.get("page", 1), params.get("page_size", 20))


def test_the_count_covers_every_page(
    client: TestClient, alice: dict[str, str], three_files: dict[str, dict[str, Any]]
) -> None:
    body = client.get("/v1/files", headers=alice, params={"type": "image/png", "page_size": 1}).json()

    assert (body["count"], len(body["results"])) == (2, 1)


def test_listing_filters_on_size_and_time(
    client: TestClient, alice: dict[str, str], three_files: dict[str, dict[str, Any]]
) -> None:
    beach, city = three_files["beach.png"], three_files["city.jpg"]
    rule = {
        "and": [
            {">": [{"var": "size"}, beach["properties"]["size"]]},
            {">=": [{"var": "created_at"}, city["created_at"]]},
        ]
    }

    response = client.get("/v1/files", headers=alice, params={"filter": json.dumps(rule), "sort": "name"})

    assert names(response) == ["city.jpg", "forest.png"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"filter": "{nope"}, "filter"),
        ({"filter": json.dumps({"==": [{"var": "owner_id"}, "x"]})}, "filter"),
        ({"sort": "owner_id"}, "sort"),
        ({"page": 0}, "page"),
        ({"page_size": 101}, "page_size"),
    ],
)
def test_bad_listing_parameters_are_refused_with_422(
    client: TestClient, alice: dict[str, str], params: dict[str, Any], field: str
) -> None:
    body = problem(client.get("/v1/files", headers=alice, params=params), 422)

    assert list(body["errors"]) == [field]
