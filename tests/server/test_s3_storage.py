"""Veil with its storage in S3 (a real SeaweedFS): uploads, resumable uploads, tasks run by the worker and
downloads with HTTP Range go through the bucket, and nothing stays on the local disk."""

from __future__ import annotations

import io
import secrets
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import obstore
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from tests.engine.video_factory import make_video
from tests.helpers import FACE_BOX, RecordingQueue, noise_image
from tests.s3_server import S3Server
from tests.server.test_files import problem
from tests.server.test_uploads import create, patch
from veil.core.settings import Settings
from veil.core.storage import S3Storage, open_storage
from veil.engine.detections import Detections
from veil.worker.context import WorkerContext
from veil.worker.tasks import run_task


@pytest.fixture
def settings(tmp_path: Path, s3_server: S3Server) -> Settings:
    url = f"s3://{s3_server.bucket}/veil-{secrets.token_hex(4)}"
    s3 = {name.removeprefix("VEIL_").lower(): value for name, value in s3_server.env(url).items()}
    return Settings(data_dir=tmp_path / "data", rate_limit="1000/minute", cleanup_interval_s=3600, **s3)


@pytest.fixture
def storage(settings: Settings) -> S3Storage:
    opened = open_storage(settings)
    assert isinstance(opened, S3Storage)
    return opened


@pytest.fixture
def worker(settings: Settings, sessions: sessionmaker[Session], queue: RecordingQueue) -> WorkerContext:
    return WorkerContext.create(settings, queue)  # type: ignore[arg-type]


def _png(width: int = 200, height: int = 150) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(client: TestClient, headers: dict[str, str], name: str, content: bytes) -> dict[str, Any]:
    response = client.post("/v1/files", headers=headers, files={"file": (name, content)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _run(client: TestClient, headers: dict[str, str], worker: WorkerContext, file_id: str) -> dict[str, Any]:
    """Submits an anonymize task through the API, runs it as the worker does, and returns its view."""
    response = client.post("/v1/tasks", headers=headers, json={"operation": "anonymize", "input": file_id})
    assert response.status_code == 202, response.text
    run_task(worker, response.json()["id"])
    task: dict[str, Any] = client.get(f"/v1/tasks/{response.json()['id']}", headers=headers).json()
    return task


def _outputs(task: dict[str, Any]) -> dict[str, str]:
    return {generated["name"]: generated["id"] for generated in task["result"]["generated_files"]}


def _local_files(settings: Settings) -> list[Path]:
    """Files left on this machine's disk, other than the database and broker files."""
    folders = (settings.storage_dir, settings.scratch_dir, settings.staging_dir)
    return [path for folder in folders if folder.exists() for path in folder.rglob("*") if path.is_file()]


def test_a_photo_task_reads_and_writes_s3_only(
    client: TestClient,
    alice: dict[str, str],
    worker: WorkerContext,
    storage: S3Storage,
    settings: Settings,
    one_face: Detections,
) -> None:
    """GIVEN storage in S3 and a photo uploaded through the API
    WHEN the worker runs an anonymize task on it
    THEN its outputs are objects in the bucket, downloaded through the API with the face blurred, and no
    file stays on the API's or the worker's disk."""
    original = _png()
    file = _upload(client, alice, "photo.png", original)

    task = _run(client, alice, worker, file["id"])

    assert task["status"] == "completed", task
    outputs = _outputs(task)
    assert set(outputs) == {"photo.png", "photo.png.json"}
    blurred = client.get(f"/v1/files/{outputs['photo.png']}/content", headers=alice)
    assert blurred.status_code == 200
    x1, y1, x2, y2 = (int(value) for value in FACE_BOX)
    before, after = _rgb(original), _rgb(blurred.content)
    assert after[y1:y2, x1:x2].std() < before[y1:y2, x1:x2].std() / 3
    assert np.array_equal(after[:, 150:], before[:, 150:])
    assert client.get(f"/v1/files/{outputs['photo.png.json']}/content", headers=alice).json()["frames"]
    assert _local_files(settings) == []


def test_a_video_is_served_from_s3_in_ranges(
    client: TestClient,
    alice: dict[str, str],
    worker: WorkerContext,
    settings: Settings,
    tmp_path: Path,
    one_face: Detections,
) -> None:
    """GIVEN a video anonymized with storage in S3
    WHEN a player asks for its bytes in ranges
    THEN each range is answered 206 with exactly those bytes, several ranges with the whole file, and a
    range past the end 416."""
    clip = make_video(tmp_path / "clip.mp4", frames=20)
    task = _run(client, alice, worker, _upload(client, alice, "clip.mp4", clip.path.read_bytes())["id"])
    assert task["status"] == "completed", task
    url = f"/v1/files/{_outputs(task)['clip.mp4']}/content"
    whole = client.get(url, headers=alice)
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-disposition"] == 'attachment; filename="clip.mp4"'
    data, size = whole.content, len(whole.content)

    for asked, (start, end) in [("bytes=100-199", (100, 200)), ("bytes=-50", (size - 50, size))]:
        part = client.get(url, headers={**alice, "Range": asked})
        assert part.status_code == 206, asked
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert part.content == data[start:end]
    several = client.get(url, headers={**alice, "Range": "bytes=0-9,20-29"})
    assert (several.status_code, several.content) == (200, data)
    beyond = problem(client.get(url, headers={**alice, "Range": f"bytes={size}-"}), 416)
    assert "starts beyond" in beyond["detail"]
    assert _local_files(settings) == []


def test_a_resumable_upload_in_several_requests_ends_as_one_object(
    client: TestClient, alice: dict[str, str], storage: S3Storage, settings: Settings
) -> None:
    """GIVEN storage in S3
    WHEN a photo is sent as a resumable upload in three requests of different sizes
    THEN it is one stored object with exactly those bytes, and no piece of the upload is left."""
    content = _png(400, 300)
    location = create(client, alice, len(content))
    cuts = [0, 10, 5000, len(content)]

    for start, end in pairwise(cuts):
        assert patch(client, alice, location, start, content[start:end]).status_code == 204

    upload = client.head(location, headers={**alice, "Tus-Resumable": "1.0.0"})
    assert int(upload.headers["upload-offset"]) == len(content)
    file_id = client.get(location, headers=alice).json()["file"]["id"]
    downloaded = client.get(f"/v1/files/{file_id}/content", headers=alice)
    assert downloaded.content == content
    objects = _objects(storage)
    assert len(objects) == 1 and objects[0].endswith("/photo.png"), objects
    assert _local_files(settings) == []


def test_a_failed_task_leaves_no_scratch_and_no_outputs(
    client: TestClient,
    alice: dict[str, str],
    worker: WorkerContext,
    storage: S3Storage,
    settings: Settings,
    one_face: Detections,
) -> None:
    """GIVEN an upload whose bytes in the bucket were replaced by something no decoder reads
    WHEN the worker runs a task on it
    THEN the task fails, and neither the worker's scratch folder nor the bucket keeps anything of it."""
    file = _upload(client, alice, "photo.png", _png())
    [key] = _objects(storage)
    staged = storage.staging_path(key)
    staged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    storage.commit(staged, key)

    task = _run(client, alice, worker, file["id"])

    assert task["status"] == "failed", task
    assert _objects(storage) == [key]
    assert _local_files(settings) == []


def _objects(storage: S3Storage) -> list[str]:
    return [meta["path"] for batch in obstore.list(storage.store) for meta in batch]


def _rgb(content: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(content)) as image:
        return np.asarray(image.convert("RGB"))
