"""The keys API: a key reads itself; admins list, create and revoke keys, never the one they use."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.server.test_files import problem
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey
from veil.core.errors import InvalidInputError
from veil.core.services.keys import checked_file_root
from veil.core.settings import Settings


def key_id(client: TestClient, headers: dict[str, str]) -> str:
    key: str = client.get("/v1/keys/me", headers=headers).json()["id"]
    return key


def test_a_key_reads_itself_with_its_usage(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        session.execute(update(ApiKey).values(files_processed=2, bytes_processed=300, frames_processed=40))

    response = client.get("/v1/keys/me", headers=alice)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "alice"
    assert body["id"].startswith("key_")
    assert alice["x-api-key"].startswith(body["prefix"])
    assert (body["is_admin"], body["revoked_at"]) == (False, None)
    assert body["usage"] == {"files": 2, "bytes": 300, "frames": 40}
    assert "secret" not in body and "key_hash" not in body


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"name": "x"}),
        ("DELETE", "/v1/keys/key_whatever", None),
    ],
)
def test_managing_keys_needs_an_admin_key(
    client: TestClient, alice: dict[str, str], method: str, path: str, json: object
) -> None:
    problem(client.request(method, path, headers=alice, json=json), 403)
    problem(client.request(method, path, json=json), 401)


def test_an_admin_creates_a_key_that_works_and_lists_it(
    client: TestClient, admin: dict[str, str], alice: dict[str, str]
) -> None:
    response = client.post("/v1/keys", headers=admin, json={"name": "scanner", "is_admin": False})

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith(created["key"]["prefix"])
    assert len(created["callback_secret"]) == 64
    me = client.get("/v1/keys/me", headers={"x-api-key": created["secret"]}).json()
    assert me == created["key"]
    listed = client.get("/v1/keys", headers=admin).json()
    assert listed["count"] == 3
    assert sorted(key["name"] for key in listed["results"]) == ["alice", "root", "scanner"]
    assert listed["results"][-1] == created["key"]  # oldest first
    assert all("secret" not in key for key in listed["results"])


def test_an_admin_creates_an_admin_key(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post("/v1/keys", headers=admin, json={"name": "second", "is_admin": True}).json()

    assert client.get("/v1/keys", headers={"x-api-key": created["secret"]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "name"), ({"name": ""}, "name"), ({"name": "x", "secret": "mine"}, "secret")],
)
def test_a_bad_key_request_names_the_field(
    client: TestClient, admin: dict[str, str], body: dict[str, str], field: str
) -> None:
    assert field in problem(client.post("/v1/keys", headers=admin, json=body), 422)["errors"]


def test_a_revoked_key_stops_working_and_is_listed_as_revoked(
    client: TestClient, admin: dict[str, str], alice: dict[str, str]
) -> None:
    alice_id = key_id(client, alice)

    response = client.delete(f"/v1/keys/{alice_id}", headers=admin)

    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"] is not None
    problem(client.get("/v1/keys/me", headers=alice), 401)
    listed = {key["id"]: key for key in client.get("/v1/keys", headers=admin).json()["results"]}
    assert listed[alice_id]["revoked_at"] == response.json()["revoked_at"]
    again = client.delete(f"/v1/keys/{alice_id}", headers=admin)
    assert again.json()["revoked_at"] == response.json()["revoked_at"]


def test_an_admin_cannot_revoke_the_key_it_uses(client: TestClient, admin: dict[str, str]) -> None:
    body = problem(client.delete(f"/v1/keys/{key_id(client, admin)}", headers=admin), 409)

    assert "using" in body["detail"]
    assert client.get("/v1/keys/me", headers=admin).status_code == 200


def test_revoking_an_unknown_key_is_not_found(client: TestClient, admin: dict[str, str]) -> None:
    problem(client.delete("/v1/keys/key_nosuchkey", headers=admin), 404)


def test_an_admin_creates_a_key_with_its_own_file_root(
    client: TestClient, admin: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    """GIVEN a directory outside the server's file root, such as /srv/dashcam
    WHEN an admin creates a key with it as `file_root`
    THEN the key shows it, and that key's BlurIt paths are relative to it."""
    dashcam = tmp_path / "dashcam"
    dashcam.mkdir()
    (dashcam / "road.jpg").write_bytes(b"photo")

    response = client.post("/v1/keys", headers=admin, json={"name": "dashcam", "file_root": str(dashcam)})

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["key"]["file_root"] == str(dashcam)
    headers = {"x-api-key": created["secret"]}
    assert client.get("/v1/keys/me", headers=headers).json()["file_root"] == str(dashcam)
    body = {
        "input_image": {"protocol": "file", "path": "road.jpg"},
        "output_json": {"protocol": "file", "path": "road.json"},
    }
    assert client.post("/api/task/file", headers=headers, json=body).status_code == 200
    plain = client.post("/v1/keys", headers=admin, json={"name": "plain"}).json()
    assert plain["key"]["file_root"] is None
    refused = client.post("/api/task/file", headers={"x-api-key": plain["secret"]}, json=body)
    assert "input_image.path" in problem(refused, 422)["errors"]


@pytest.mark.parametrize(
    ("file_root", "says"),
    [
        ("relative/dir", "give an absolute path"),
        ("/no/such/dir", "is not a directory on the server"),
        ("/", "holds the data directory"),
        ("DATA_DIR", "holds the data directory"),
        ("STORAGE_DIR/key", "overlaps the storage directory"),
        ("/tmp/\x00", "is not a usable path"),
        # Other keys' files: every key's own folder, one key's own folder, every key's work in progress.
        ("FILE_ROOT", "holds the file root"),
        ("FILE_ROOT/key_alice/photos", "a key's own folder"),
        ("DATA_DIR/staging", "holds every key's work in progress"),
    ],
)
def test_an_unusable_file_root_is_refused(
    client: TestClient, admin: dict[str, str], settings: Settings, file_root: str, says: str
) -> None:
    for folder in (settings.storage_dir / "key", settings.file_root_dir / "key_alice" / "photos"):
        folder.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "staging").mkdir(exist_ok=True)
    given = (
        file_root.replace("DATA_DIR", str(settings.data_dir))
        .replace("STORAGE_DIR", str(settings.storage_dir))
        .replace("FILE_ROOT", str(settings.file_root_dir))
    )

    body = problem(client.post("/v1/keys", headers=admin, json={"name": "x", "file_root": given}), 422)

    [message] = body["errors"]["file_root"]
    assert says in message
    assert client.get("/v1/keys", headers=admin).json()["count"] == 1


def test_a_file_root_holding_the_data_directory_leaves_it_to_no_key(tmp_path: Path) -> None:
    """GIVEN an installation whose file root holds its data directory (VEIL_FILE_ROOT=/srv,
    VEIL_DATA_DIR=/srv/veil)
    WHEN a key's root is set inside the data directory, or beside it in the file root
    THEN the first is refused (the database and every key's work in progress are there), the second not."""
    settings = Settings(data_dir=tmp_path / "srv" / "veil", file_root=tmp_path / "srv")
    for folder in (settings.data_dir / "staging", tmp_path / "srv" / "dashcam"):
        folder.mkdir(parents=True)

    with pytest.raises(InvalidInputError) as refused:
        checked_file_root(str(settings.data_dir / "staging"), settings)

    [message] = refused.value.errors["file_root"]
    assert "is in the data directory" in message
    assert checked_file_root(str(tmp_path / "srv" / "dashcam"), settings) == str(tmp_path / "srv" / "dashcam")
