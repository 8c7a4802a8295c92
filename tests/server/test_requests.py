"""Background requests as a client sees them (`/v1/requests`, backups of tasks), with the worker's
`run_task` and `run_request` called directly on what the API queued, and the scripted face detector."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue, noise_image
from tests.server.conftest import make_key
from tests.server.test_tasks import problem
from veil.core.database.connection import create_db_engine, migrate, session_scope
from veil.core.database.models import BackgroundRequest, StoredFile, Task, utc_now
from veil.core.services.maintenance import recover_tasks, run_maintenance
from veil.core.settings import Settings
from veil.core.storage import LocalStorage
from veil.server.main import create_app
from veil.worker.context import WorkerContext
from veil.worker.requests import run_request
from veil.worker.tasks import run_task

pytestmark = pytest.mark.usefixtures("one_face")


@pytest.fixture
def context(settings: Settings, sessions: sessionmaker[Session], queue: RecordingQueue) -> WorkerContext:
    return WorkerContext(
        settings,
        sessions,
        LocalStorage(settings.storage_dir),
        queue,  # type: ignore[arg-type]
        beat_interval_s=0.0,
    )


def upload_photo(client: TestClient, headers: dict[str, str]) -> str:
    """A new 200x150 photo, which the scripted detector finds a face in."""
    buffer = io.BytesIO()
    Image.fromarray(noise_image()).save(buffer, format="PNG")
    files = {"file": ("photo.png", buffer.getvalue(), "image/png")}
    response = client.post("/v1/files", headers=headers, files=files)
    assert response.status_code == 201, response.text
    file_id: str = response.json()["id"]
    return file_id


def anonymized(client: TestClient, context: WorkerContext, headers: dict[str, str]) -> str:
    """The id of a completed anonymize task on a new photo, run by the worker."""
    body = {"operation": "anonymize", "input": upload_photo(client, headers)}
    task_id: str = client.post("/v1/tasks", headers=headers, json=body).json()["id"]
    run_task(context, task_id)
    return task_id


def run_requests(context: WorkerContext, queue: RecordingQueue) -> None:
    """Runs every request the API queued, as a worker taking them from the broker would."""
    while queue.requests:
        request_id, _ = queue.requests.pop(0)
        run_request(context, request_id)


def started(response: Any) -> str:
    assert response.status_code == 202, response.text
    rq_id: str = response.json()["rq_id"]
    return rq_id


def download(client: TestClient, headers: dict[str, str], url: str) -> bytes:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    content: bytes = response.content
    return content


def test_a_backup_is_a_request_whose_result_is_a_zip_of_the_task(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    """GIVEN a completed anonymize task
    WHEN its backup is requested and the worker runs the request
    THEN the request goes from queued to finished, naming the operation, and its result is a zip with the
    manifest, the task, its input and its generated files (the detections JSON among them)."""
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))

    queued = client.get(f"/v1/requests/{rq_id}", headers=alice).json()
    assert (queued["status"], queued["progress"], queued["result_url"]) == ("queued", 0.0, None)
    assert queued["operation"] == {
        "type": "export:backup",
        "target": "task",
        "task_id": task_id,
        "task_ids": None,
        "format": None,
    }
    assert queue.requests == [(rq_id, "photo")]
    run_requests(context, queue)

    finished = client.get(f"/v1/requests/{rq_id}", headers=alice).json()
    assert (finished["status"], finished["progress"], finished["message"]) == ("finished", 1.0, "")
    assert finished["result_url"] == f"/v1/files/{finished['result_id']}/content"
    with zipfile.ZipFile(io.BytesIO(download(client, alice, finished["result_url"]))) as backup:
        assert sorted(backup.namelist()) == [
            "generated/photo.png",
            "generated/photo.png.json",
            "input/photo.png",
            "manifest.json",
            "task.json",
        ]
        manifest = json.loads(backup.read("manifest.json"))
        described = json.loads(backup.read("task.json"))
        detections = json.loads(backup.read("generated/photo.png.json"))
    assert (manifest["schema"], manifest["veil_version"]) == ("veil.backup/1", version("veil"))
    assert (described["operation"], described["status"]) == ("anonymize", "completed")
    assert described["result"] == {"detections": {"face": 1}, "frames": 1}
    assert [len(frame["detections"]) for frame in detections["frames"]] == [1]


def test_a_backup_restored_into_another_instance_gives_the_same_task_and_bytes(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    tmp_path: Path,
) -> None:
    """GIVEN the backup of a completed task on one Veil instance
    WHEN it is restored on another, with its own data directory and database
    THEN the request there names a new task that has the same operation, parameters, status, result and
    times, and generated files with the same names, types and bytes; its input is a file of the new key."""
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    run_requests(context, queue)
    backup = download(client, alice, client.get(f"/v1/requests/{rq_id}", headers=alice).json()["result_url"])
    original = client.get(f"/v1/tasks/{task_id}", headers=alice).json()

    with other_instance(tmp_path / "other") as (other, other_context, other_queue):
        carol = make_key(other_context.sessions, "carol")
        files = {"file": ("backup.zip", backup, "application/zip")}
        restore_id = started(other.post("/v1/tasks/backup", headers=carol, files=files))
        run_requests(other_context, other_queue)
        restore = other.get(f"/v1/requests/{restore_id}", headers=carol).json()
        assert (restore["status"], restore["message"], restore["result_url"]) == ("finished", "", None)
        assert restore["operation"]["type"] == "import:backup"
        restored = other.get(f"/v1/tasks/{restore['result_id']}", headers=carol).json()
        assert restored["id"] != task_id
        assert restore["operation"]["task_id"] == restored["id"]
        same = ("operation", "status", "progress", "input_name", "created_at", "updated_at", "error")
        assert {name: restored[name] for name in same} == {name: original[name] for name in same}
        assert restored["result"]["detections"] == original["result"]["detections"]
        assert {**restored["parameters"], "input": None} == {**original["parameters"], "input": None}
        assert restored["parameters"]["input"] != original["parameters"]["input"]
        pairs = zip(original["result"]["generated_files"], restored["result"]["generated_files"], strict=True)
        for before, after in pairs:
            assert (after["name"], after["type"], after["properties"]) == (
                before["name"],
                before["type"],
                before["properties"],
            )
            assert after["id"] != before["id"]
            before_bytes = download(client, alice, f"/v1/files/{before['id']}/content")
            assert download(other, carol, f"/v1/files/{after['id']}/content") == before_bytes
        input_file = other.get(f"/v1/files/{restored['parameters']['input']}", headers=carol).json()
        assert (input_file["name"], input_file["type"], input_file["task_id"]) == (
            "photo.png",
            "image/png",
            None,
        )


@contextmanager
def other_instance(data_dir: Path) -> Iterator[tuple[TestClient, WorkerContext, RecordingQueue]]:
    """A second Veil server with its own data directory, database and storage, with a worker context."""
    settings = Settings(data_dir=data_dir, rate_limit="1000/minute", cleanup_interval_s=3600)
    migrate(settings.database_url)
    sessions = sessionmaker(create_db_engine(settings.database_url), expire_on_commit=False)
    queue = RecordingQueue()
    storage = LocalStorage(settings.storage_dir)
    context = WorkerContext(settings, sessions, storage, queue, beat_interval_s=0.0)  # type: ignore[arg-type]
    with TestClient(create_app(settings, queue=queue), raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield client, context, queue


def test_a_key_sees_only_its_own_requests(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    bob: dict[str, str],
    admin: dict[str, str],
) -> None:
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    run_requests(context, queue)

    for other in (bob, admin):
        problem(client.get(f"/v1/requests/{rq_id}", headers=other), 404)
        problem(client.delete(f"/v1/requests/{rq_id}", headers=other), 404)
        assert client.get("/v1/requests", headers=other).json()["count"] == 0
    problem(client.post(f"/v1/tasks/{task_id}/backup/export", headers=bob), 404)
    assert [item["id"] for item in client.get("/v1/requests", headers=alice).json()["results"]] == [rq_id]
    for path in ("/v1/requests", f"/v1/requests/{rq_id}"):
        problem(client.get(path), 401)


def test_requests_are_listed_with_the_paging_and_filters_of_tasks(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    task_id = anonymized(client, context, alice)
    first = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    run_requests(context, queue)
    second = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))

    def ids(**params: Any) -> list[str]:
        response = client.get("/v1/requests", headers=alice, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["results"]]

    assert ids() == [second, first]
    assert ids(sort="created_at") == [first, second]
    assert ids(status="finished") == [first]
    assert ids(operation="export:backup", task_id=task_id, page_size=1, page=2) == [first]
    assert ids(filter=json.dumps({"==": [{"var": "status"}, "queued"]})) == [second]
    assert ids(search="backup") == [second, first]
    assert "sort" in problem(client.get("/v1/requests?sort=owner_id", headers=alice), 422)["errors"]
    problem(client.get("/v1/requests?status=cancelled", headers=alice), 422)


def test_a_queued_request_is_cancelled_once_and_then_never_runs(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))

    cancelled = client.delete(f"/v1/requests/{rq_id}", headers=alice)
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["message"]) == (
        "failed",
        "Cancelled at the client's request.",
    )
    run_requests(context, queue)
    assert client.get(f"/v1/requests/{rq_id}", headers=alice).json()["status"] == "failed"
    assert "already failed" in problem(client.delete(f"/v1/requests/{rq_id}", headers=alice), 409)["detail"]
    assert stored_files(context) == 3  # the input and the task's two outputs


def test_a_request_cancelled_while_it_runs_keeps_nothing(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN a backup request the client cancels while the worker writes the zip
    WHEN the worker reports its progress
    THEN it stops: the request stays failed as cancelled, and no result file or bytes are left."""
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    from veil.core.services import backups

    def cancel_midway(*args: Any, progress: Any, **kwargs: Any) -> None:
        client.delete(f"/v1/requests/{rq_id}", headers=alice)
        backups.write_backup(*args, progress=progress, **kwargs)

    monkeypatch.setattr("veil.worker.requests.write_backup", cancel_midway)
    run_requests(context, queue)

    request = client.get(f"/v1/requests/{rq_id}", headers=alice).json()
    assert (request["status"], request["result_url"]) == ("failed", None)
    assert stored_files(context) == 3
    assert not list(context.settings.storage_dir.rglob(f"*{rq_id}*"))


def test_a_request_and_its_result_expire_with_the_files_lifespan(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    run_requests(context, queue)
    request = client.get(f"/v1/requests/{rq_id}", headers=alice).json()
    finished_at, expires_at = (
        datetime.fromisoformat(request[name]) for name in ("finished_at", "expires_at")
    )
    assert expires_at - finished_at == timedelta(seconds=context.settings.file_lifespan_s)
    result = client.get(f"/v1/files/{request['result_id']}", headers=alice).json()
    assert abs(datetime.fromisoformat(result["expires_at"]) - expires_at) < timedelta(seconds=5)

    past = utc_now() - timedelta(seconds=1)
    with session_scope(context.sessions) as session:
        session.execute(update(BackgroundRequest).values(expires_at=past))
        session.execute(
            update(StoredFile).where(StoredFile.id == request["result_id"]).values(expires_at=past)
        )
    problem(client.get(f"/v1/requests/{rq_id}", headers=alice), 404)
    problem(client.get(request["result_url"], headers=alice), 404)
    run_maintenance(context.sessions, context.storage, queue, context.settings)  # type: ignore[arg-type]

    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(BackgroundRequest)) == 0
    assert not list(context.settings.storage_dir.rglob(f"*{rq_id}*"))


def test_only_a_finished_task_is_backed_up(
    client: TestClient, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    body = {"operation": "anonymize", "input": upload_photo(client, alice)}
    task_id = client.post("/v1/tasks", headers=alice, json=body).json()["id"]

    detail = problem(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice), 409)["detail"]
    assert detail == f"Task {task_id} is queued; back it up once it has finished."
    assert queue.requests == []
    problem(client.post("/v1/tasks/task_nosuchtask0000/backup/export", headers=alice), 404)


def stored_files(context: WorkerContext) -> int:
    with context.sessions() as session:
        return session.scalar(select(func.count()).select_from(StoredFile)) or 0


def rezipped(backup: bytes, changes: dict[str, bytes | None]) -> bytes:
    """`backup` with members replaced, added (name: bytes) or left out (name: None)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(backup)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for name in source.namelist():
            if name not in changes:
                target.writestr(name, source.read(name))
        for name, data in changes.items():
            if data is not None:
                target.writestr(name, data)
    return out.getvalue()


def task_json(backup: bytes, **changes: Any) -> bytes:
    with zipfile.ZipFile(io.BytesIO(backup)) as source:
        return json.dumps({**json.loads(source.read("task.json")), **changes}).encode()


BAD_BACKUPS = [
    (lambda b: b"PK not really a zip", "The file is not a zip archive."),
    (
        lambda b: rezipped(b, {"../escape.txt": b"x"}),
        "The archive: the member '../escape.txt' would be written outside its folder",
    ),
    (
        lambda b: rezipped(b, {"/etc/passwd": b"x"}),
        "The archive: the member '/etc/passwd' would be written outside its folder",
    ),
    (lambda b: rezipped(b, {"generated/zeros": bytes(20 * 1024**2)}), "refused as a zip bomb"),
    (lambda b: rezipped(b, {"manifest.json": b'{"schema": "cvat"}'}), "The file is not a Veil backup"),
    (lambda b: rezipped(b, {"task.json": None}), "The archive has no task.json."),
    (lambda b: rezipped(b, {"input/photo.png": b"<html>not a photo</html>"}), "The backup's input file"),
    (lambda b: rezipped(b, {"task.json": task_json(b, operation="erase")}), "operation"),
    (
        lambda b: rezipped(b, {"task.json": task_json(b, files=[{"role": "input", "name": "../photo.png"}])}),
        "names may not hold folders",
    ),
]


@pytest.mark.parametrize(("spoil", "message"), BAD_BACKUPS)
def test_a_bad_backup_fails_its_request_saying_why_and_stores_nothing(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    spoil: Any,
    message: str,
) -> None:
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    run_requests(context, queue)
    backup = download(client, alice, client.get(f"/v1/requests/{rq_id}", headers=alice).json()["result_url"])
    files_before = sorted(path for path in context.settings.storage_dir.rglob("*") if path.is_file())

    files = {"file": ("backup.zip", spoil(backup), "application/zip")}
    restore_id = started(client.post("/v1/tasks/backup", headers=alice, files=files))
    run_requests(context, queue)

    restore = client.get(f"/v1/requests/{restore_id}", headers=alice).json()
    assert restore["status"] == "failed"
    assert message in restore["message"]
    assert (restore["result_id"], restore["operation"]["task_id"]) == (None, None)
    assert sorted(path for path in context.settings.storage_dir.rglob("*") if path.is_file()) == files_before
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Task)) == 1
    assert stored_files(context) == 4  # the task's input and outputs, and the backup


def test_requests_whose_message_or_worker_was_lost_run_again(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    """GIVEN a queued request (its message lost with the broker) and a started one whose worker died,
    untouched for the task time limit, and one started a moment ago
    WHEN the server starts (recover_tasks) and maintenance runs
    THEN the first two are sent again and run to the end; the live one is left alone."""
    task_id = anonymized(client, context, alice)
    lost, dead, live = (
        started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice)) for _ in "abc"
    )
    queue.requests.clear()
    limit = timedelta(seconds=context.settings.task_time_limit_s)
    with session_scope(context.sessions) as session:
        session.execute(
            update(BackgroundRequest).where(BackgroundRequest.id.in_([dead, live])).values(status="started")
        )
        session.execute(
            update(BackgroundRequest)
            .where(BackgroundRequest.id == dead)
            .values(updated_at=utc_now() - limit - timedelta(seconds=1))
        )

    assert recover_tasks(context.sessions, queue) == 1  # type: ignore[arg-type]
    run_maintenance(context.sessions, context.storage, queue, context.settings)  # type: ignore[arg-type]

    assert [rq_id for rq_id, _ in queue.requests] == [lost, dead]
    run_requests(context, queue)
    statuses = [
        client.get(f"/v1/requests/{rq_id}", headers=alice).json()["status"] for rq_id in (lost, dead, live)
    ]
    assert statuses == ["finished", "finished", "started"]


def request_upload(
    client: TestClient, headers: dict[str, str], data: bytes, *, purpose: str = "request"
) -> str:
    """The id of a resumable upload of `data` for a background request, sent in two pieces."""
    encoded = {
        name: base64.b64encode(value.encode()).decode()
        for name, value in [("filename", "b.zip"), ("purpose", purpose)]
    }
    tus = {"Tus-Resumable": "1.0.0"}
    created = client.post(
        "/v1/uploads",
        headers={
            **headers,
            **tus,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": ",".join(f"{k} {v}" for k, v in encoded.items()),
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    for offset in (0, len(data) // 2):
        end = len(data) if offset else len(data) // 2
        piece = {
            **headers,
            **tus,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        sent = client.patch(location, headers=piece, content=data[offset:end])
        assert sent.status_code == 204, sent.text
    return str(location.rsplit("/", 1)[1])


def test_a_backup_in_a_resumable_upload_is_restored_and_the_upload_taken(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    task_id = anonymized(client, context, alice)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    run_requests(context, queue)
    backup = download(client, alice, client.get(f"/v1/requests/{rq_id}", headers=alice).json()["result_url"])
    upload_id = request_upload(client, alice, backup)

    assert (
        "upload"
        in problem(client.post("/v1/tasks/backup", headers=bob, params={"upload": upload_id}), 422)["errors"]
    )
    restore_id = started(client.post("/v1/tasks/backup", headers=alice, params={"upload": upload_id}))
    run_requests(context, queue)

    assert client.get(f"/v1/requests/{restore_id}", headers=alice).json()["status"] == "finished"
    assert (
        client.head(f"/v1/uploads/{upload_id}", headers={**alice, "Tus-Resumable": "1.0.0"}).status_code
        == 404
    )
    errors = problem(client.post("/v1/tasks/backup", headers=alice, params={"upload": upload_id}), 422)[
        "errors"
    ]
    assert errors["upload"] == [f"Upload with id {upload_id} not found."]


def test_only_a_complete_upload_for_a_request_is_taken(client: TestClient, alice: dict[str, str]) -> None:
    tus = {
        **alice,
        "Tus-Resumable": "1.0.0",
        "Upload-Metadata": "purpose " + base64.b64encode(b"request").decode(),
    }
    partial = (
        client.post("/v1/uploads", headers={**tus, "Upload-Length": "10"})
        .headers["location"]
        .rsplit("/", 1)[1]
    )
    photo = request_upload(client, alice, _png(), purpose="file")

    for upload_id, why in ((partial, "is not complete"), (photo, "was made for a file")):
        response = client.post("/v1/tasks/backup", headers=alice, params={"upload": upload_id})
        assert why in problem(response, 422)["errors"]["upload"][0]
    unknown = {
        **tus,
        "Upload-Length": "10",
        "Upload-Metadata": "purpose " + base64.b64encode(b"zip").decode(),
    }
    assert "Upload-Metadata" in problem(client.post("/v1/uploads", headers=unknown), 422)["errors"]
    large = {"Upload-Length": str(4 * 1024**3)}  # over the file limit, under the request limit (three times)
    assert client.post("/v1/uploads", headers={**tus, **large}).status_code == 201
    problem(client.post("/v1/uploads", headers={**alice, "Tus-Resumable": "1.0.0", **large}), 413)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image()).save(buffer, format="PNG")
    return buffer.getvalue()
