"""BlurIt-style tasks with `protocol: "s3"` on a real S3 server (SeaweedFS): objects below the key's own
prefix in, objects out; every other bucket, prefix or hostile spelling is refused naming the field."""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import FACE_BOX, noise_image
from tests.s3_server import S3Server
from tests.worker.conftest import task_row
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey
from veil.core.errors import InvalidInputError
from veil.core.services.blurit import (
    DirectoryTaskCreate,
    FileTaskCreate,
    create_directory_task,
    create_file_task,
)
from veil.core.services.blurit_s3 import S3Files, s3_files
from veil.core.services.keys import create_api_key
from veil.core.settings import Settings
from veil.engine.detections import Detections
from veil.worker.context import WorkerContext
from veil.worker.tasks import run_task


@pytest.fixture
def settings(tmp_path: Path, s3_server: S3Server) -> Settings:
    env = s3_server.env("")
    return Settings(
        data_dir=tmp_path / "data",
        s3_files_url=f"s3://{s3_server.bucket}/files-{secrets.token_hex(4)}",
        **{name.removeprefix("VEIL_").lower(): value for name, value in env.items() if value},
    )


@pytest.fixture
def files(settings: Settings) -> S3Files:
    found = s3_files(settings)
    assert found is not None
    return found


def _prefix(files: S3Files, owner: ApiKey) -> str:
    return files.prefix_of(owner.id, is_admin=False)


def _put(files: S3Files, key: str, data: bytes) -> None:
    staged = files.bucket.staging_path(key)
    staged.write_bytes(data)
    files.bucket.commit(staged, key)


def _read(files: S3Files, key: str) -> bytes:
    with files.bucket.open(key) as source:
        return source.read()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image()).save(buffer, format="PNG")
    return buffer.getvalue()


def _spec(files: S3Files, path: str, **extra: Any) -> dict[str, Any]:
    return {"protocol": "s3", "bucket": files.location.bucket, "path": path, **extra}


def _submit(context: WorkerContext, owner: ApiKey, files: S3Files | None, body: dict[str, Any]) -> str:
    root = context.settings.file_root_dir
    with context.sessions() as session:
        if "input_directory" in body:
            request = DirectoryTaskCreate.model_validate(body)
            return create_directory_task(session, owner=owner, request=request, file_root=root, s3=files).id
        request_file = FileTaskCreate.model_validate(body)
        return create_file_task(session, owner=owner, request=request_file, file_root=root, s3=files).id


def test_a_photo_object_is_anonymized_into_another_object(
    context: WorkerContext, owner: ApiKey, files: S3Files, one_face: Detections
) -> None:
    """GIVEN a photo below the key's prefix
    WHEN a BlurIt file task with protocol s3 runs, asking for the photo and the detections JSON
    THEN both are objects where asked, the face blurred, and the input is deleted as asked."""
    prefix = _prefix(files, owner)
    original = _png()
    _put(files, f"{prefix}in/photo.png", original)
    body = {
        "input_image": _spec(files, f"{prefix}in/photo.png", auto_delete=True),
        "output_image": _spec(files, f"{prefix}out/photo.png"),
        "output_json": _spec(files, f"{prefix}out/photo.json"),
    }

    run_task(context, task_id := _submit(context, owner, files, body))

    task = task_row(context, task_id)
    assert task.status == "completed", task.error
    assert task.result is not None and task.result["nb_files"] == {"IMAGE": 1, "VIDEO": 0}
    x1, y1, x2, y2 = (int(value) for value in FACE_BOX)
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"))
    after = np.asarray(Image.open(io.BytesIO(_read(files, f"{prefix}out/photo.png"))).convert("RGB"))
    assert after[y1:y2, x1:x2].std() < before[y1:y2, x1:x2].std() / 3
    assert json.loads(_read(files, f"{prefix}out/photo.json"))["frames"]
    assert not files.bucket.exists(f"{prefix}in/photo.png")
    assert list(context.settings.staging_dir.iterdir()) == []


def test_a_key_prefix_is_processed_object_by_object(
    context: WorkerContext, owner: ApiKey, files: S3Files, one_face: Detections
) -> None:
    """GIVEN two photos (one a level down) and a text file below an input prefix
    WHEN a directory task with protocol s3 runs
    THEN each photo has its anonymized copy and JSON at the same relative key below the output prefix."""
    prefix = _prefix(files, owner)
    for name in ("a.png", "sub/b.png"):
        _put(files, f"{prefix}batch/{name}", _png())
    _put(files, f"{prefix}batch/notes.txt", b"not media")
    body = {
        "input_directory": _spec(files, f"{prefix}batch"),
        "output_directory": _spec(files, f"{prefix}done"),
    }

    run_task(context, task_id := _submit(context, owner, files, body))

    task = task_row(context, task_id)
    assert task.status == "completed", task.error
    assert task.result is not None and task.result["nb_files"]["IMAGE"] == 2
    written = sorted(key.removeprefix(f"{prefix}done/") for key in files.bucket.list_keys(f"{prefix}done"))
    assert written == ["a.png", "a.png.json", "sub/b.png", "sub/b.png.json"]


@pytest.mark.parametrize(
    ("path", "bucket", "field", "message"),
    [
        ("{other}in/photo.png", None, "input_image.path", "outside your prefix"),
        ("{prefix}../{other_id}/in/photo.png", None, "input_image.path", 'without ".."'),
        ("{prefix}./in/photo.png", None, "input_image.path", 'without ".."'),
        ("/{prefix}in/photo.png", None, "input_image.path", 'without ".."'),
        ("{prefix}in//photo.png", None, "input_image.path", 'without ".."'),
        ("{prefix}in/photo.png", "another-bucket", "input_image.path", "is not the one for protocol s3"),
        ("{prefix}in/missing.png", None, "input_image.path", "no such object"),
    ],
)
def test_an_input_outside_the_keys_prefix_is_refused(
    context: WorkerContext,
    owner: ApiKey,
    files: S3Files,
    sessions: sessionmaker[Session],
    path: str,
    bucket: str | None,
    field: str,
    message: str,
) -> None:
    with session_scope(sessions) as session:
        other = create_api_key(session, name="bob").record
    prefix, other_prefix = _prefix(files, owner), _prefix(files, other)
    _put(files, f"{prefix}in/photo.png", _png())
    _put(files, f"{other_prefix}in/photo.png", _png())
    spec = _spec(files, path.format(prefix=prefix, other=other_prefix, other_id=other.id))
    if bucket is not None:
        spec["bucket"] = bucket
    body = {"input_image": spec, "output_json": _spec(files, f"{prefix}out/photo.json")}

    with pytest.raises(InvalidInputError) as refused:
        _submit(context, owner, files, body)

    assert field in refused.value.errors, refused.value.errors
    assert message in " ".join(refused.value.errors[field])


def test_outputs_that_would_replace_objects_or_outlive_the_bucket_rules_are_refused(
    context: WorkerContext, owner: ApiKey, files: S3Files
) -> None:
    prefix = _prefix(files, owner)
    _put(files, f"{prefix}in/photo.png", _png())
    _put(files, f"{prefix}out/photo.json", b"{}")
    body = {
        "input_image": _spec(files, f"{prefix}in/photo.png"),
        "output_image": _spec(files, f"{prefix}in/photo.png", lifespan=60),
        "output_json": _spec(files, f"{prefix}out/photo.json"),
    }

    with pytest.raises(InvalidInputError) as refused:
        _submit(context, owner, files, body)

    assert set(refused.value.errors) == {"output_image.lifespan"}
    body["output_image"].pop("lifespan")
    with pytest.raises(InvalidInputError) as refused:
        _submit(context, owner, files, body)
    assert refused.value.errors == {
        "output_image.path": ["is the input input_image; give another key"],
        "output_json.path": ["exists already; set overwrite to replace it"],
    }


def test_s3_paths_need_the_server_set_up_and_one_protocol_per_task(
    context: WorkerContext, owner: ApiKey, files: S3Files
) -> None:
    body: dict[str, Any] = {
        "input_image": _spec(files, f"{_prefix(files, owner)}in/photo.png"),
        "output_json": _spec(files, f"{_prefix(files, owner)}out/photo.json"),
    }
    with pytest.raises(InvalidInputError) as not_set_up:
        _submit(context, owner, None, body)
    assert "VEIL_S3_FILES_URL" in not_set_up.value.errors["input_image.protocol"][0]

    body["output_json"] = {"protocol": "file", "path": "photo.json"}
    with pytest.raises(InvalidInputError) as mixed:
        _submit(context, owner, files, body)
    assert set(mixed.value.errors) == {"input_image.protocol", "output_json.protocol"}
