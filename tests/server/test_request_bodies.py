"""Request bodies the API refuses with a problem rather than a 500 or a full memory: JSON over the size
limit, an unusable Content-Length, malformed, too deeply nested, non-UTF-8 or compressed JSON, lone
surrogates, numbers beyond 64 bits, NaN."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import noise_image
from veil.core.settings import Settings

LIMIT = 4096
JSON = {"content-type": "application/json"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", rate_limit="1000/minute", cleanup_interval_s=3600, max_json_bytes=LIMIT
    )


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def task_body(size: int) -> bytes:
    """A task request of exactly `size` bytes (white space pads it), valid but for its unknown input."""
    head, tail = b'{"operation": "anonymize", "input": "file_none"', b"}"
    return head + b" " * (size - len(head) - len(tail)) + tail


def chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    """The body streamed without a Content-Length (chunked), as a client that does not announce it."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_a_json_body_over_the_limit_gets_413(
    client: TestClient, alice: dict[str, str], streamed: bool
) -> None:
    body = task_body(LIMIT + 1)

    response = client.post("/v1/tasks", headers={**alice, **JSON}, content=chunks(body) if streamed else body)

    assert f"larger than the limit of {LIMIT} bytes" in problem(response, 413)["detail"]


def test_a_body_without_a_json_type_is_bound_too(client: TestClient, alice: dict[str, str]) -> None:
    # FastAPI parses a body without Content-Type as JSON, so the limit cannot rest on the type alone.
    response = client.post("/v1/tasks", headers=alice, content=task_body(LIMIT + 1))

    problem(response, 413)


def test_a_json_body_at_the_limit_reaches_the_route(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post("/v1/tasks", headers={**alice, **JSON}, content=chunks(task_body(LIMIT)))

    # The route read all of it: the unknown input is what it refuses.
    assert "input" in problem(response, 422)["errors"]


def test_file_uploads_are_bound_by_the_upload_limit_only(client: TestClient, alice: dict[str, str]) -> None:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(64, 64)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) > LIMIT

    response = client.post("/v1/files", headers=alice, files={"file": ("big.png", buffer.getvalue())})

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("media_type", ["multipart/form-data; boundary=x", "application/offset+octet-stream"])
@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/keys", "/api/task/file"])
def test_an_upload_typed_body_to_a_json_route_is_bound_too(
    client: TestClient, admin: dict[str, str], media_type: str, path: str
) -> None:
    # Such a route would read the whole body to parse it: only the upload routes stream these types.
    response = client.post(
        path, headers={**admin, "content-type": media_type}, content=chunks(task_body(LIMIT + 1))
    )

    problem(response, 413)


@pytest.mark.parametrize("declared", ["-1", "abc", "1e3", "+5", "5, 6", "\N{SUPERSCRIPT TWO}"])
def test_an_unusable_content_length_gets_400(
    client: TestClient, alice: dict[str, str], declared: str
) -> None:
    response = client.post(
        "/v1/tasks",
        headers={**alice, **JSON, "content-length": declared.encode()},
        content=b"{}",
    )

    assert "Content-Length must be one non-negative number" in problem(response, 400)["detail"]


def test_malformed_json_is_reported_under_body_with_its_position(
    client: TestClient, alice: dict[str, str]
) -> None:
    response = client.post(
        "/v1/tasks", headers={**alice, **JSON}, content=b'{"operation": "anonymize",\n "input": }'
    )

    body = problem(response, 422)
    assert list(body["errors"]) == ["body"], "the error names the body, not a character offset"
    (message,) = body["errors"]["body"]
    assert message == "The body is not valid JSON: Expecting value at line 2, column 11 (character 37)."


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/tasks", {"operation": "anonymize", "input": "file_\ud800"}, "input"),
        ("/v1/tasks", {"operation": "anonymize", "input": "f", "callback_url": "https://e.org/\udfff"}, None),
        ("/v1/tasks", {"operation": "render", "input": "f", "parameters": {"detections": "\ud800"}}, None),
        ("/v1/keys", {"name": "\ud800"}, "name"),
        ("/api/task/file", {"input_image": {"protocol": "file", "path": "\udc00.jpg"}}, None),
    ],
)
def test_a_lone_surrogate_in_a_body_gets_422(
    client: TestClient, admin: dict[str, str], path: str, body: dict[str, Any], field: str | None
) -> None:
    # json.dumps writes a lone surrogate as the escape "\ud800", as a hostile client would.
    response = client.post(path, headers={**admin, **JSON}, content=json.dumps(body).encode())

    errors = problem(response, 422)["errors"]
    if field is not None:
        assert field in errors


@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/files"])
@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"==": [{"var": "id"}, "\ud800"]}, "lone surrogate"),
        ({">": [{"var": "created_at"}, 2**64]}, "out of range"),
    ],
)
def test_a_filter_the_database_cannot_take_gets_422(
    client: TestClient, alice: dict[str, str], path: str, rule: dict[str, Any], message: str
) -> None:
    response = client.get(path, headers=alice, params={"filter": json.dumps(rule)})

    (found,) = problem(response, 422)["errors"]["filter"]
    assert message in found


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00"])
def test_a_time_with_no_utc_form_gets_422(client: TestClient, alice: dict[str, str], moment: str) -> None:
    body = {
        "input_image": {"protocol": "file", "path": "in.jpg", "expires_at": moment},
        "output_image": {"protocol": "file", "path": "out.jpg"},
    }

    response = client.post("/api/task/file", headers={**alice, **JSON}, json=body)

    assert "input_image.expires_at" in problem(response, 422)["errors"]


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({}, b"[" * 2_000 + b"]" * 2_000, "The body nests arrays and objects too deeply to be read"),
        ({}, b"[" * LIMIT, "The body nests arrays and objects too deeply to be read"),
        ({}, '{"operation": "anonymize", "input": "café"}'.encode("latin-1"), "not UTF-8 text (byte 0xe9 at"),
        (
            {"content-encoding": "gzip"},
            gzip.compress(b" " * 1_000_000 + b'{"operation": "anonymize", "input": "f"}'),
            "The body is encoded (gzip); send it uncompressed",
        ),
    ],
    ids=["2000-deep", "4096-deep-unclosed", "latin-1", "gzip"],
)
def test_a_body_that_cannot_be_read_as_json_says_why(
    client: TestClient, alice: dict[str, str], headers: dict[str, str], body: bytes, message: str
) -> None:
    response = client.post("/v1/tasks", headers={**alice, **JSON, **headers}, content=body)

    (found,) = problem(response, 422)["errors"]["body"]
    assert message in found


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_in_a_body_are_refused_naming_the_field(
    client: TestClient, alice: dict[str, str], literal: bytes
) -> None:
    body = b'{"operation": "anonymize", "input": "f", "parameters": {"threshold": %s}}' % literal
    response = client.post("/v1/tasks", headers={**alice, **JSON}, content=body)

    assert "parameters.threshold" in problem(response, 422)["errors"]
