"""The BlurIt-style API: submitting file and directory tasks, each key below its own file root; refusing
paths outside it (`..`, absolute, a symbolic link anywhere below it), outputs that would replace an input or
(without `overwrite`) an existing file; reading a task back in the seed's shape."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, Task
from veil.core.safety.paths import MAX_DEPTH
from veil.core.services.keys import hash_key
from veil.core.settings import Settings

# The keys of the result in `GET /api/task/{task_id}` of the BlurIt on-premise documentation.
SEED_RESULT_KEYS = {
    "input_directory",
    "output_directory",
    "size",
    "nb_files",
    "input_video",
    "input_image",
    "output_video",
    "output_image",
    "output_json",
}
SEED_INPUT_FILE_KEYS = {"protocol", "path", "expires_at", "auto_delete"}
SEED_OUTPUT_FILE_KEYS = {"protocol", "path", "lifespan"}
SEED_COUNT_KEYS = {"IMAGE", "VIDEO"}


def key_id(sessions: sessionmaker[Session], headers: dict[str, str]) -> str:
    with sessions() as session:
        found = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(headers["x-api-key"])))
    assert found is not None
    return found


@pytest.fixture
def root(settings: Settings, sessions: sessionmaker[Session], alice: dict[str, str], tmp_path: Path) -> Path:
    """Alice's file root (her own folder below the file root) with a photo, a video, a directory of two
    photos, and symbolic links leading out."""
    root = settings.file_root_dir / key_id(sessions, alice)
    (root / "batch" / "sub").mkdir(parents=True)
    (root / "image.jpg").write_bytes(b"photo")
    (root / "clip.mp4").write_bytes(b"video")
    (root / "batch" / "a.jpg").write_bytes(b"photo")
    (root / "batch" / "sub" / "b.jpg").write_bytes(b"photo")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    (root / "batch" / "sub" / "escape").symlink_to(outside, target_is_directory=True)
    (root / "batch" / "secret.jpg").symlink_to(outside / "secret.jpg")
    return root


def file_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input_image": {"protocol": "file", "path": "image.jpg"},
        "output_image": {"protocol": "file", "path": "image_blured.jpg", "lifespan": 3600},
        "output_json": {"protocol": "file", "path": "detections.json"},
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def directory_body(input_path: str = "batch", output_path: str = "batch_blured") -> dict[str, Any]:
    return {
        "input_directory": {"protocol": "file", "path": input_path, "auto_delete": "False"},
        "output_directory": {"protocol": "file", "path": output_path},
    }


def stored_task(sessions: sessionmaker[Session], task_id: str) -> Task:
    with sessions() as session:
        task = session.get(Task, task_id)
    assert task is not None
    return task


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["errors"], response.json()


def test_a_file_task_is_stored_and_enqueued(
    client: TestClient,
    root: Path,
    alice: dict[str, str],
    queue: RecordingQueue,
    sessions: sessionmaker[Session],
) -> None:
    body = file_body(
        input_image={"protocol": "file", "path": "image.jpg", "auto_delete": "True"},
        parameters={"detectors": ["face"], "styles": {"face": {"method": "pixelate"}}},
    )

    response = client.post("/api/task/file", json=body, headers=alice)

    assert response.status_code == 200, response.text
    task_id = response.json()["task_id"]
    assert queue.task_ids == [task_id]
    task = stored_task(sessions, task_id)
    assert (task.api, task.operation, task.status) == ("blurit", "anonymize", "queued")
    assert task.input["input_image"] == {"protocol": "file", "path": "image.jpg", "auto_delete": True}
    assert task.input["output_image"]["lifespan"] == 3600
    assert task.parameters["detectors"] == ["face"]
    assert task.parameters["styles"]["face"]["method"] == "pixelate"


def test_a_video_task_takes_output_video(
    client: TestClient, root: Path, alice: dict[str, str], queue: RecordingQueue
) -> None:
    body = {
        "input_video": {"protocol": "file", "path": "clip.mp4", "expires_at": "2042-01-01 00:00:00+02:00"},
        "output_video": {"protocol": "file", "path": "out/clip_blured.mp4"},
    }

    response = client.post("/api/task/file", json=body, headers=alice)

    assert response.status_code == 200, response.text
    shown = client.get(f"/api/task/{response.json()['task_id']}", headers=alice).json()
    assert shown["result"]["input_video"]["expires_at"] == "2041-12-31T22:00:00Z"
    assert shown["result"]["input_video"]["auto_delete"] == "False"


def test_a_directory_task_is_stored_and_enqueued(
    client: TestClient,
    root: Path,
    alice: dict[str, str],
    queue: RecordingQueue,
    sessions: sessionmaker[Session],
) -> None:
    response = client.post("/api/task/directory", json=directory_body(), headers=alice)

    assert response.status_code == 200, response.text
    task_id = response.json()["task_id"]
    assert queue.task_ids == [task_id]
    assert stored_task(sessions, task_id).input == {
        "input_directory": {"protocol": "file", "path": "batch", "auto_delete": False},
        "output_directory": {"protocol": "file", "path": "batch_blured"},
        "overwrite": False,
    }
    result = client.get(f"/api/task/{task_id}", headers=alice).json()["result"]
    assert result["input_directory"] == {"protocol": "file", "path": "batch", "auto_delete": "False"}
    assert result["input_image"] is None


@pytest.mark.parametrize(
    "path",
    [
        "../x.jpg",
        "/etc/passwd",
        "escape.jpg",
        "escape/secret.jpg",
        "a/../../b",
        "batch/../image.jpg",
        "batch/secret.jpg",
        "batch/sub/escape/secret.jpg",
        "batch/sub/escape/new/x.jpg",
        "/".join(["deep"] * (MAX_DEPTH + 1)),
    ],
)
@pytest.mark.parametrize("field", ["input_image", "output_image"])
def test_paths_leaving_the_file_root_are_refused(
    client: TestClient, root: Path, alice: dict[str, str], queue: RecordingQueue, path: str, field: str
) -> None:
    spec = dict(file_body()[field], path=path)

    response = client.post("/api/task/file", json=file_body(**{field: spec}), headers=alice)

    assert_refused(response, f"{field}.path")
    assert set(response.json()["errors"]) == {f"{field}.path"}
    assert queue.task_ids == []


@pytest.mark.parametrize(
    ("input_path", "output_path", "field"),
    [
        ("../batch", "batch_blured", "input_directory.path"),
        ("escape", "batch_blured", "input_directory.path"),
        ("batch", "/tmp/out", "output_directory.path"),
        ("batch", "escape/out", "output_directory.path"),
        ("batch/sub/escape", "batch_blured", "input_directory.path"),
        ("batch", "batch/sub/escape/out", "output_directory.path"),
        ("missing", "batch_blured", "input_directory.path"),
        ("image.jpg", "batch_blured", "input_directory.path"),
        ("batch", "batch", "output_directory.path"),
        ("batch", "batch/sub/out", "output_directory.path"),
        ("batch/sub", "batch", "output_directory.path"),
        ("batch", "image.jpg", "output_directory.path"),
    ],
)
def test_bad_directory_tasks_are_refused(
    client: TestClient,
    root: Path,
    alice: dict[str, str],
    queue: RecordingQueue,
    input_path: str,
    output_path: str,
    field: str,
) -> None:
    response = client.post("/api/task/directory", json=directory_body(input_path, output_path), headers=alice)

    assert_refused(response, field)
    assert queue.task_ids == []


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"input_image": None}, {"input_image", "input_video"}),
        ({"input_video": {"protocol": "file", "path": "clip.mp4"}}, {"input_image", "input_video"}),
        ({"input_image": {"protocol": "s3", "path": "image.jpg"}}, {"input_image.bucket"}),
        ({"input_image": {"protocol": "file", "bucket": "b", "path": "image.jpg"}}, {"input_image.bucket"}),
        ({"output_json": {"protocol": "http", "path": "d.json"}}, {"output_json.protocol"}),
        ({"input_image": {"protocol": "file", "path": "missing.jpg"}}, {"input_image.path"}),
        ({"input_image": {"protocol": "file", "path": "batch"}}, {"input_image.path"}),
        ({"input_image": {"protocol": "file", "path": ""}}, {"input_image.path"}),
        ({"output_image": None, "output_json": None}, {"output_image"}),
        ({"output_video": {"protocol": "file", "path": "v.mp4"}}, {"output_video"}),
        ({"output_image": {"protocol": "file", "path": "image.jpg"}}, {"output_image.path"}),
        ({"output_image": {"protocol": "file", "path": "batch"}}, {"output_image.path"}),
        ({"output_json": {"protocol": "file", "path": "image_blured.jpg"}}, {"output_json.path"}),
        ({"output_json": {"protocol": "file", "path": "d.json", "lifespan": 0}}, {"output_json.lifespan"}),
        (
            {"input_image": {"protocol": "file", "path": "image.jpg", "expires_at": "2001-01-01T00:00:00Z"}},
            {"input_image.expires_at"},
        ),
        (
            {"input_image": {"protocol": "file", "path": "image.jpg", "expires_at": "2042-01-01T00:00:00"}},
            {"input_image.expires_at"},
        ),
        (
            {"input_image": {"protocol": "file", "path": "image.jpg", "auto_delete": "yes"}},
            {"input_image.auto_delete"},
        ),
        ({"parameters": {"detectors": ["cat"]}}, {"parameters.detectors.0"}),
        ({"input_imag": {"protocol": "file", "path": "image.jpg"}}, {"input_imag"}),
    ],
)
def test_bad_file_tasks_are_refused_naming_the_fields(
    client: TestClient,
    root: Path,
    alice: dict[str, str],
    queue: RecordingQueue,
    changes: dict[str, Any],
    fields: set[str],
) -> None:
    response = client.post("/api/task/file", json=file_body(**changes), headers=alice)

    assert response.status_code == 422, response.text
    assert set(response.json()["errors"]) == fields
    assert queue.task_ids == []


def test_the_task_reads_back_in_the_seed_shape(client: TestClient, root: Path, alice: dict[str, str]) -> None:
    task_id = client.post("/api/task/file", json=file_body(), headers=alice).json()["task_id"]

    response = client.get(f"/api/task/{task_id}", headers=alice)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"task_id", "status", "result", "error", "failures"}
    assert (body["task_id"], body["status"], body["error"]) == (task_id, "queued", None)
    result = body["result"]
    assert set(result) == SEED_RESULT_KEYS
    assert set(result["input_image"]) == SEED_INPUT_FILE_KEYS
    assert set(result["output_image"]) == set(result["output_json"]) == SEED_OUTPUT_FILE_KEYS
    assert result["output_image"] == {"protocol": "file", "path": "image_blured.jpg", "lifespan": 3600}
    assert result["input_image"]["auto_delete"] == "False"
    assert result["size"] == result["nb_files"] == dict.fromkeys(SEED_COUNT_KEYS, 0)


def test_a_finished_task_shows_its_counts_and_a_failed_one_its_error(
    client: TestClient, root: Path, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    done_id = client.post("/api/task/file", json=file_body(), headers=alice).json()["task_id"]
    failed_id = client.post("/api/task/file", json=file_body(), headers=alice).json()["task_id"]
    with session_scope(sessions) as session:
        done = session.get(Task, done_id)
        failed = session.get(Task, failed_id)
        assert done is not None and failed is not None
        done.status = "completed"
        done.result = {
            **done.input,
            "size": {"IMAGE": 5, "VIDEO": 0},
            "nb_files": {"IMAGE": 1, "VIDEO": 0},
            "failures": [{"path": "in/broken.jpg", "reason": "the file is truncated"}],
        }
        failed.status = "failed"
        failed.error = {"title": "Unreadable media", "detail": "image.jpg is not a photo or a video."}

    shown_done = client.get(f"/api/task/{done_id}", headers=alice).json()
    shown_failed = client.get(f"/api/task/{failed_id}", headers=alice).json()

    assert shown_done["status"] == "completed"
    assert shown_done["result"]["size"] == {"IMAGE": 5, "VIDEO": 0}
    assert shown_done["failures"] == [{"path": "in/broken.jpg", "reason": "the file is truncated"}]
    assert "failures" not in shown_done["result"], "the result keeps exactly the seed's keys"
    assert shown_done["result"]["nb_files"] == {"IMAGE": 1, "VIDEO": 0}
    assert shown_failed["status"] == "failed"
    assert shown_failed["error"]["detail"] == "image.jpg is not a photo or a video."


def test_a_key_sees_only_its_own_blurit_tasks(
    client: TestClient,
    root: Path,
    alice: dict[str, str],
    bob: dict[str, str],
    admin: dict[str, str],
    sessions: sessionmaker[Session],
) -> None:
    task_id = client.post("/api/task/file", json=file_body(), headers=alice).json()["task_id"]
    with session_scope(sessions) as session:
        alice_id = session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(alice["x-api-key"])))
        v1_task = Task(owner_id=alice_id, api="v1", operation="anonymize", input={"file": "file_x"})
        session.add(v1_task)
        session.flush()
        v1_task_id = v1_task.id

    refused = client.get(f"/api/task/{task_id}", headers=bob)

    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert client.get(f"/api/task/{task_id}", headers=admin).status_code == 200
    assert client.get(f"/api/task/{v1_task_id}", headers=alice).status_code == 404, (
        "v1 tasks are not BlurIt's"
    )
    assert client.get("/api/task/task_missing", headers=alice).status_code == 404


def test_a_link_is_not_followed_even_to_a_file_inside_the_root(
    client: TestClient, root: Path, alice: dict[str, str], queue: RecordingQueue
) -> None:
    (root / "inside.jpg").symlink_to(root / "image.jpg")
    body = file_body(input_image={"protocol": "file", "path": "inside.jpg"})

    response = client.post("/api/task/file", json=body, headers=alice)

    assert_refused(response, "input_image.path")
    assert "symbolic link" in response.json()["errors"]["input_image.path"][0]


def test_each_key_has_its_own_file_root_and_admins_the_whole_of_it(
    client: TestClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    root: Path,
    alice: dict[str, str],
    bob: dict[str, str],
    admin: dict[str, str],
) -> None:
    """GIVEN photos in alice's folder and at the top of the file root
    WHEN bob, alice and an admin name them
    THEN bob's paths are relative to his own folder (made on first use) and reach neither; alice reaches
    only hers; the admin reaches both, alice's through her folder."""
    (settings.file_root_dir / "top.jpg").write_bytes(b"photo")
    alice_id, bob_id = key_id(sessions, alice), key_id(sessions, bob)

    def submit(headers: dict[str, str], path: str, output: str = "mine.jpg") -> Any:
        body = file_body(input_image={"protocol": "file", "path": path}, output_image=None)
        return client.post(
            "/api/task/file",
            json={**body, "output_json": {"protocol": "file", "path": output}},
            headers=headers,
        )

    for path in ("image.jpg", f"{alice_id}/image.jpg", "top.jpg", f"../{alice_id}/image.jpg"):
        assert_refused(submit(bob, path), "input_image.path")
    assert (settings.file_root_dir / bob_id).is_dir()
    assert submit(alice, "image.jpg").status_code == 200
    assert_refused(submit(alice, "top.jpg"), "input_image.path")
    assert submit(admin, "top.jpg").status_code == 200
    assert submit(admin, f"{alice_id}/image.jpg", output=f"{bob_id}/x.json").status_code == 200


@pytest.mark.parametrize("spelling", ["image.jpg", "./image.jpg", "image.jpg/", ".//image.jpg", "hard.jpg"])
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("field", ["output_image", "output_json"])
def test_an_output_is_never_the_input_whatever_its_spelling(
    client: TestClient,
    root: Path,
    alice: dict[str, str],
    queue: RecordingQueue,
    spelling: str,
    overwrite: bool,
    field: str,
) -> None:
    os.link(root / "image.jpg", root / "hard.jpg")
    body = file_body(**{field: {"protocol": "file", "path": spelling}}, overwrite=overwrite)

    response = client.post("/api/task/file", json=body, headers=alice)

    assert_refused(response, f"{field}.path")
    assert "is an input" in response.json()["errors"][f"{field}.path"][0]
    assert queue.task_ids == []


def test_an_existing_output_is_refused_unless_overwrite(
    client: TestClient, root: Path, alice: dict[str, str], queue: RecordingQueue
) -> None:
    (root / "image_blured.jpg").write_bytes(b"earlier")
    (root / "dangling.json").symlink_to(root / "nothing")

    refused = client.post("/api/task/file", json=file_body(), headers=alice)
    json_refused = client.post(
        "/api/task/file",
        json=file_body(output_image=None, output_json={"protocol": "file", "path": "dangling.json"}),
        headers=alice,
    )
    accepted = client.post("/api/task/file", json=file_body(overwrite=True), headers=alice)
    accepted_as_text = client.post("/api/task/file", json=file_body(overwrite="True"), headers=alice)

    assert_refused(refused, "output_image.path")
    assert set(refused.json()["errors"]) == {"output_image.path"}
    assert "overwrite" in refused.json()["errors"]["output_image.path"][0]
    assert_refused(json_refused, "output_json.path")
    assert accepted.status_code == accepted_as_text.status_code == 200
    assert len(queue.task_ids) == 2


def test_a_directory_task_that_would_replace_files_is_refused_unless_overwrite(
    client: TestClient, root: Path, alice: dict[str, str], queue: RecordingQueue
) -> None:
    (root / "batch_blured" / "sub").mkdir(parents=True)
    (root / "batch_blured" / "sub" / "b.jpg.json").write_bytes(b"earlier")
    (root / "batch_blured" / "unrelated.jpg").write_bytes(b"kept")

    refused = client.post("/api/task/directory", json=directory_body(), headers=alice)
    accepted = client.post("/api/task/directory", json={**directory_body(), "overwrite": True}, headers=alice)

    assert_refused(refused, "output_directory.path")
    [message] = refused.json()["errors"]["output_directory.path"]
    assert message.startswith("sub/b.jpg.json: already exists")
    assert accepted.status_code == 200, accepted.text
    assert len(queue.task_ids) == 1


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_directory_task_never_writes_over_its_inputs_or_through_links(
    client: TestClient, root: Path, alice: dict[str, str], queue: RecordingQueue, overwrite: bool
) -> None:
    (root / "batch_blured").mkdir()
    os.link(root / "batch" / "a.jpg", root / "batch_blured" / "a.jpg")
    (root / "batch_blured" / "sub").symlink_to(root / "elsewhere", target_is_directory=True)

    response = client.post(
        "/api/task/directory", json={**directory_body(), "overwrite": overwrite}, headers=alice
    )

    assert_refused(response, "output_directory.path")
    messages = response.json()["errors"]["output_directory.path"]
    assert any(m.startswith("a.jpg: is an input of this task") for m in messages), messages
    assert any(m.startswith("sub/b.jpg, sub/b.jpg.json: 'sub' is a symbolic link") for m in messages), (
        messages
    )
    assert queue.task_ids == []


def test_a_directory_task_over_a_tree_deeper_than_python_recurses_is_accepted(
    client: TestClient, root: Path, alice: dict[str, str], queue: RecordingQueue
) -> None:
    """GIVEN an input directory holding a tree 1,200 levels deep, and an existing output directory
    WHEN a directory task over it is submitted
    THEN it is accepted (the deep part is skipped when walked), not answered with a 500."""
    (root / "batch_blured").mkdir()
    levels = 1200
    for level in range(1, levels + 1):
        os.mkdir(root / "batch" / "/".join(["a"] * level))
    try:
        response = client.post("/api/task/directory", json=directory_body(), headers=alice)
    finally:  # bottom up: pytest's clean-up recurses, and would fail on this tree
        for level in range(levels, 0, -1):
            os.rmdir(root / "batch" / "/".join(["a"] * level))

    assert response.status_code == 200, response.text
    assert len(queue.task_ids) == 1
