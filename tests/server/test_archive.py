"""`GET /v1/tasks/archive`: the outputs of the caller's completed tasks as one streamed zip."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.server.test_files import image_bytes
from tests.server.test_tasks import problem, submit, upload_photo
from veil.core.database.connection import session_scope
from veil.core.database.models import StoredFile, Task
from veil.core.services.archives import ArchiveMember, stream_zip
from veil.core.settings import Settings
from veil.core.storage import LocalStorage


def completed_task(
    client: TestClient,
    headers: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    outputs: dict[str, tuple[str, bytes]],
) -> str:
    """A task completed with the given outputs ({name: (type, bytes)}), written as a worker would."""
    response = submit(client, headers, input=upload_photo(client, headers))
    assert response.status_code == 202, response.text
    task_id: str = response.json()["id"]
    storage = LocalStorage(settings.storage_dir)
    with session_scope(sessions) as session:
        task = session.get(Task, task_id)
        assert task is not None
        task.status, task.progress, task.result = "completed", 1.0, {"detections": {}}
        for index, (name, (media_type, content)) in enumerate(outputs.items()):
            key = f"{task.owner_id}/out{index}{task_id}/{name}"
            path = storage.path(key)
            path.parent.mkdir(parents=True)
            path.write_bytes(content)
            session.add(
                StoredFile(
                    id=f"file_o{index}{task_id[-12:]}",
                    owner_id=task.owner_id,
                    name=name,
                    media_type=media_type,
                    size=len(content),
                    storage_key=key,
                    task_id=task_id,
                )
            )
    return task_id


def test_the_archive_holds_every_output_of_every_task(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session], settings: Settings
) -> None:
    photo, report = image_bytes("PNG", 300, 200), b'{"schema": "veil.detections/1"}' * 50
    first = completed_task(
        client,
        alice,
        sessions,
        settings,
        {"a.png": ("image/png", photo), "a.png.json": ("application/json", report)},
    )
    second = completed_task(client, alice, sessions, settings, {"b.png": ("image/png", photo[::-1])})

    response = client.get("/v1/tasks/archive", params={"ids": f"{first},{second}"}, headers=alice)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="veil-tasks.zip"' in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [f"{first}/a.png", f"{first}/a.png.json", f"{second}/b.png"]
        assert archive.read(f"{first}/a.png") == photo
        assert archive.read(f"{first}/a.png.json") == report
        assert archive.read(f"{second}/b.png") == photo[::-1]
        methods = {info.filename: info.compress_type for info in archive.infolist()}
    # Media is stored as it is; JSON is deflated.
    assert methods[f"{first}/a.png"] == zipfile.ZIP_STORED
    assert methods[f"{first}/a.png.json"] == zipfile.ZIP_DEFLATED


def test_one_tasks_archive_is_named_after_it(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session], settings: Settings
) -> None:
    task_id = completed_task(client, alice, sessions, settings, {"a.png": ("image/png", b"x" * 10)})

    response = client.get("/v1/tasks/archive", params={"ids": f"{task_id},{task_id}"}, headers=alice)

    assert f'filename="{task_id}.zip"' in response.headers["content-disposition"]
    assert zipfile.ZipFile(io.BytesIO(response.content)).namelist() == [f"{task_id}/a.png"]


def test_unknown_or_foreign_tasks_are_not_found(
    client: TestClient,
    alice: dict[str, str],
    bob: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    mine = completed_task(client, alice, sessions, settings, {"a.png": ("image/png", b"x")})
    theirs = completed_task(client, bob, sessions, settings, {"b.png": ("image/png", b"y")})

    for ids in (f"{mine},{theirs}", "task_nosuchtask", theirs):
        body = problem(client.get("/v1/tasks/archive", params={"ids": ids}, headers=alice), 404)
        assert "not found" in body["detail"]


def test_a_task_that_is_not_completed_is_a_conflict(client: TestClient, alice: dict[str, str]) -> None:
    queued = submit(client, alice, input=upload_photo(client, alice)).json()["id"]

    body = problem(client.get("/v1/tasks/archive", params={"ids": queued}, headers=alice), 409)

    assert "queued" in body["detail"]


@pytest.mark.parametrize("ids", ["", ",", " , "])
def test_an_empty_id_list_is_refused(client: TestClient, alice: dict[str, str], ids: str) -> None:
    assert (
        "ids" in problem(client.get("/v1/tasks/archive", params={"ids": ids}, headers=alice), 422)["errors"]
    )


def test_the_zip_is_written_a_piece_at_a_time(tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    big.write_bytes(bytes(range(256)) * 12_000)  # about 3 MB

    member = ArchiveMember("task_x/big.mp4", "big.mp4", "video/mp4", datetime(2030, 1, 2, 3, 4, 5))
    pieces = list(stream_zip(LocalStorage(tmp_path), [member]))

    assert len(pieces) > 2
    with zipfile.ZipFile(io.BytesIO(b"".join(pieces))) as archive:
        assert archive.read("task_x/big.mp4") == big.read_bytes()
