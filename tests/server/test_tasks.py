"""The tasks API as a client sees it: submit, validate, chain, cancel, list; the queue gets task ids.

Workers do not run here: a test that needs a finished task writes what a worker would (status, result,
generated file rows) straight to the database.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tests.engine.video_factory import make_video
from tests.helpers import RecordingQueue, noise_image
from veil.core.database.connection import session_scope
from veil.core.database.models import TASK_STATUSES, ApiKey, StoredFile, Task
from veil.core.parameters import OPERATIONS
from veil.core.schemas import Operation, TaskCreate, TaskStatus
from veil.core.services.tasks import create_task
from veil.core.settings import Settings
from veil.core.storage import LocalStorage

PROBLEM = "application/problem+json"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def upload_photo(client: TestClient, headers: dict[str, str], name: str = "photo.png") -> str:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(32, 24)).save(buffer, format="PNG")
    response = client.post(
        "/v1/files", headers=headers, files={"file": (name, buffer.getvalue(), "image/png")}
    )
    assert response.status_code == 201, response.text
    file_id: str = response.json()["id"]
    return file_id


def submit(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/tasks", headers=headers, json={"operation": "anonymize", **body})


def finish(
    sessions: sessionmaker[Session],
    task_id: str,
    *,
    status: str = "completed",
    outputs: tuple[str, ...] = ("image/png", "application/json"),
    error: dict[str, str] | None = None,
) -> None:
    """Records what a worker records when it ends a task."""
    with session_scope(sessions) as session:
        task = session.get(Task, task_id)
        assert task is not None
        task.status, task.progress, task.error = status, 1.0, error
        task.result = {"detections": {"face": 2, "plate": 1}} if status == "completed" else None
        for index, media_type in enumerate(outputs):
            session.add(
                StoredFile(
                    id=f"file_out{index}{task_id[-12:]}",
                    owner_id=task.owner_id,
                    name=f"output-{index}",
                    media_type=media_type,
                    size=10 + index,
                    properties={"size": 10 + index},
                    storage_key=f"{task.owner_id}/out{index}/{task_id}",
                    task_id=task_id,
                )
            )


def test_operations_and_statuses_match_the_models() -> None:
    assert set(get_args(Operation)) == set(OPERATIONS)
    assert get_args(TaskStatus) == TASK_STATUSES


def test_a_submitted_task_is_queued_with_its_parameters_completed(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue
) -> None:
    file_id = upload_photo(client, alice)

    response = submit(client, alice, input=file_id, parameters={"detectors": ["face"], "crf": 20})

    assert response.status_code == 202, response.text
    task = response.json()
    assert task["id"].startswith("task_")
    assert queue.task_ids == [task["id"]]
    assert (task["operation"], task["status"], task["progress"]) == ("anonymize", "queued", 0.0)
    assert (task["result"], task["error"], task["callback_url"]) == (None, None, None)
    parameters = task["parameters"]
    assert (parameters["input"], parameters["callback_url"]) == (file_id, None)
    assert (parameters["detectors"], parameters["crf"]) == (["face"], 20)
    assert (parameters["draw"], parameters["keep_audio"]) == (False, True)
    assert parameters["styles"]["face"]["method"] == "blur", "the default style per label is shown"
    assert parameters["styles"]["plate"]["shape"] == "rectangle"
    assert client.get(f"/v1/tasks/{task['id']}", headers=alice).json() == task


def test_a_detect_task_takes_detect_parameters_only(client: TestClient, alice: dict[str, str]) -> None:
    file_id = upload_photo(client, alice)

    accepted = submit(client, alice, operation="detect", input=file_id, parameters={"threshold": 0.5})
    refused = submit(client, alice, operation="detect", input=file_id, parameters={"draw": True})

    assert accepted.status_code == 202
    assert set(accepted.json()["parameters"]) == {
        "detectors",
        "threshold",
        "detect_every",
        "device",
        "input",
        "callback_url",
    }
    assert list(problem(refused, 422)["errors"]) == ["parameters.draw"]


def test_tasks_are_queued_by_media_kind_and_requested_device(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue, tmp_path: Path
) -> None:
    """GIVEN a photo and a video
    WHEN tasks are submitted on each, with and without `device: "gpu"`, and chained on them
    THEN each waits in the photo, video or gpu queue, as its row and its message say."""
    photo = upload_photo(client, alice)
    clip = make_video(tmp_path / "clip.mp4", frames=5, audio=None)
    video = client.post("/v1/files", headers=alice, files={"file": ("clip.mp4", clip.path.read_bytes())})
    cases = [
        ({"input": photo}, "photo"),
        ({"input": video.json()["id"]}, "video"),
        ({"input": photo, "parameters": {"device": "gpu"}}, "gpu"),
        ({"input": video.json()["id"], "parameters": {"device": "gpu"}}, "gpu"),
        ({"operation": "detect", "input": video.json()["id"]}, "video"),
    ]
    tasks = [submit(client, alice, **body).json() for body, _ in cases]
    chained = [submit(client, alice, input=task["id"]).json() for task in tasks[2:4]]

    assert [task["queue"] for task in tasks + chained] == [expected for _, expected in cases] + [
        "photo",
        "video",
    ], "a chained task without a device goes by its media kind"
    assert queue.queues == [task["queue"] for task in tasks + chained]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"parameters": {"crf": 99}}, ["parameters.crf"]),
        ({"parameters": {"blurr": True}}, ["parameters.blurr"]),
        ({"parameters": {"detectors": []}}, ["parameters.detectors"]),
        ({"parameters": {"styles": {"face": {"method": "smudge"}}}}, ["parameters.styles.face.method"]),
        ({"parameters": {"threshold": 2, "crf": -1}}, ["parameters.crf", "parameters.threshold"]),
        ({"operation": "colorize"}, ["operation"]),
        ({"input": "photo.png"}, ["input"]),
        ({"input": "file_doesnotexist00"}, ["input"]),
        ({"input": "task_doesnotexist00"}, ["input"]),
        ({"surprise": 1}, ["surprise"]),
    ],
)
def test_bad_submissions_are_refused_naming_the_fields(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue, body: dict[str, Any], fields: list[str]
) -> None:
    file_id = upload_photo(client, alice)

    refused = problem(submit(client, alice, **{"input": file_id, **body}), 422)

    assert sorted(refused["errors"]) == fields
    assert queue.task_ids == []


def test_another_keys_file_or_task_cannot_be_an_input(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    file_id = upload_photo(client, alice)
    task_id = submit(client, alice, input=file_id).json()["id"]

    for other in (file_id, task_id):
        refused = problem(submit(client, bob, input=other), 422)
        assert refused["errors"]["input"] == [f"{other.split('_')[0].title()} with id {other} not found."]


def test_a_task_can_be_chained_on_an_anonymize_task(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue, sessions: sessionmaker[Session]
) -> None:
    first = submit(client, alice, input=upload_photo(client, alice)).json()["id"]

    while_queued = submit(client, alice, operation="detect", input=first)
    finish(sessions, first)
    once_completed = submit(client, alice, operation="detect", input=first)

    assert (while_queued.status_code, once_completed.status_code) == (202, 202)
    assert while_queued.json()["parameters"]["input"] == first
    assert queue.task_ids == [first, while_queued.json()["id"], once_completed.json()["id"]]


@pytest.mark.parametrize(
    ("upstream", "status", "outputs", "code", "message"),
    [
        ("detect", "completed", ("application/json",), 422, "only an anonymize task has media"),
        ("anonymize", "failed", (), 409, "failed; it has no output"),
        ("anonymize", "cancelled", (), 409, "cancelled; it has no output"),
        ("anonymize", "completed", ("application/json",), 409, "has expired or was deleted"),
    ],
)
def test_a_task_without_media_to_give_cannot_be_chained_on(
    client: TestClient,
    alice: dict[str, str],
    sessions: sessionmaker[Session],
    upstream: str,
    status: str,
    outputs: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    first = submit(client, alice, operation=upstream, input=upload_photo(client, alice)).json()["id"]
    finish(sessions, first, status=status, outputs=outputs)

    refused = problem(submit(client, alice, input=first), code)

    assert message in (refused["errors"]["input"][0] if code == 422 else refused["detail"])


def test_a_completed_task_shows_its_generated_files_and_detections(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    task_id = submit(client, alice, input=upload_photo(client, alice)).json()["id"]
    finish(sessions, task_id)

    task = client.get(f"/v1/tasks/{task_id}", headers=alice).json()

    assert (task["status"], task["progress"], task["error"]) == ("completed", 1.0, None)
    assert task["result"]["detections"] == {"face": 2, "plate": 1}
    generated = task["result"]["generated_files"]
    assert [(item["type"], item["task_id"]) for item in generated] == [
        ("image/png", task_id),
        ("application/json", task_id),
    ]
    assert generated[0]["properties"] == {"size": 10}


def test_a_failed_task_shows_why(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    task_id = submit(client, alice, input=upload_photo(client, alice)).json()["id"]
    error = {"title": "Corrupt input", "detail": "photo.png cannot be decoded"}
    finish(sessions, task_id, status="failed", outputs=(), error=error)

    task = client.get(f"/v1/tasks/{task_id}", headers=alice).json()

    assert (task["status"], task["error"], task["result"]) == ("failed", error, None)


def test_a_queued_task_can_be_cancelled_once(client: TestClient, alice: dict[str, str]) -> None:
    created = submit(client, alice, input=upload_photo(client, alice)).json()

    cancelled = client.delete(f"/v1/tasks/{created['id']}", headers=alice)
    again = client.delete(f"/v1/tasks/{created['id']}", headers=alice)

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["updated_at"] > created["updated_at"]
    assert problem(again, 409)["detail"] == (
        f"Task {created['id']} is already cancelled; only a queued or started task can be cancelled."
    )


@pytest.mark.parametrize(("status", "code"), [("started", 200), ("completed", 409), ("failed", 409)])
def test_only_an_unfinished_task_can_be_cancelled(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session], status: str, code: int
) -> None:
    task_id = submit(client, alice, input=upload_photo(client, alice)).json()["id"]
    with session_scope(sessions) as session:
        session.execute(update(Task).where(Task.id == task_id).values(status=status))

    response = client.delete(f"/v1/tasks/{task_id}", headers=alice)

    assert response.status_code == code
    expected = "cancelled" if code == 200 else status
    assert client.get(f"/v1/tasks/{task_id}", headers=alice).json()["status"] == expected


def test_a_file_cannot_be_deleted_while_a_task_reads_it(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    file_id = upload_photo(client, alice)
    task_id = submit(client, alice, input=file_id).json()["id"]

    refused = problem(client.delete(f"/v1/files/{file_id}", headers=alice), 409)
    client.delete(f"/v1/tasks/{task_id}", headers=alice)
    deleted = client.delete(f"/v1/files/{file_id}", headers=alice)

    assert task_id in refused["detail"]
    assert deleted.status_code == 204


def test_a_generated_file_cannot_be_deleted_while_a_chained_task_waits_for_it(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    first = submit(client, alice, input=upload_photo(client, alice)).json()["id"]
    finish(sessions, first)
    chained = submit(client, alice, input=first).json()["id"]
    media_id = client.get(f"/v1/tasks/{first}", headers=alice).json()["result"]["generated_files"][0]["id"]

    assert chained in problem(client.delete(f"/v1/files/{media_id}", headers=alice), 409)["detail"]


def test_another_key_cannot_see_or_cancel_a_task(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], admin: dict[str, str]
) -> None:
    task_id = submit(client, alice, input=upload_photo(client, alice)).json()["id"]

    for method in ("GET", "DELETE"):
        body = problem(client.request(method, f"/v1/tasks/{task_id}", headers=bob), 404)
        assert body["detail"] == f"Task with id {task_id} not found."
    assert client.get("/v1/tasks", headers=bob).json()["count"] == 0
    assert client.get("/v1/tasks", headers=admin).json()["count"] == 1
    assert client.get(f"/v1/tasks/{task_id}", headers=alice).json()["status"] == "queued"


def test_every_route_needs_a_key(client: TestClient) -> None:
    for method, url in [
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/t"),
        ("DELETE", "/v1/tasks/t"),
    ]:
        problem(client.request(method, url), 401)


@pytest.mark.parametrize(
    "callback_url",
    ["http://127.0.0.1:9000/hook", "http://10.0.0.8/hook", "http://localhost/hook", "http://[::1]/hook"],
)
def test_callbacks_to_private_addresses_are_refused_unless_allowed(
    client: TestClient, alice: dict[str, str], settings: Settings, callback_url: str
) -> None:
    file_id = upload_photo(client, alice)

    refused = problem(submit(client, alice, input=file_id, callback_url=callback_url), 422)
    settings.allow_private_callbacks = True
    accepted = submit(client, alice, input=file_id, callback_url=callback_url)

    assert "not a public address" in refused["errors"]["callback_url"][0]
    assert accepted.status_code == 202
    assert accepted.json()["callback_url"] == accepted.json()["parameters"]["callback_url"] == callback_url


def test_a_public_callback_url_is_kept(client: TestClient, alice: dict[str, str]) -> None:
    url = "https://93.184.216.34/veil-done"

    task = submit(client, alice, input=upload_photo(client, alice), callback_url=url).json()

    assert task["callback_url"] == url


@pytest.fixture
def four_tasks(client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]) -> list[str]:
    """Submitted in order: anonymize (completed), detect (queued), anonymize (queued), detect on the first."""
    beach, city = upload_photo(client, alice, "beach.png"), upload_photo(client, alice, "city.png")
    ids = [
        submit(client, alice, input=beach).json()["id"],
        submit(client, alice, operation="detect", input=beach).json()["id"],
        submit(client, alice, input=city).json()["id"],
    ]
    finish(sessions, ids[0])
    ids.append(submit(client, alice, operation="detect", input=ids[0]).json()["id"])
    return ids


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [3, 2, 1, 0]),
        ({"sort": "created_at"}, [0, 1, 2, 3]),
        ({"sort": "-progress,created_at"}, [0, 1, 2, 3]),
        ({"sort": "operation,-created_at"}, [2, 0, 3, 1]),
        ({"sort": "created_at", "page": 2, "page_size": 3}, [3]),
        ({"status": "queued", "sort": "created_at"}, [1, 2, 3]),
        ({"operation": "detect", "sort": "created_at"}, [1, 3]),
        ({"status": "completed", "operation": "detect"}, []),
        ({"search": "DETECT", "sort": "created_at"}, [1, 3]),
        ({"search": "complete"}, [0]),
        ({"filter": json.dumps({"==": [{"var": "status"}, "completed"]})}, [0]),
        ({"filter": json.dumps({"in": [{"var": "operation"}, ["anonymize"]]}), "sort": "created_at"}, [0, 2]),
        ({"filter": json.dumps({"!": {"==": [{"var": "progress"}, 0]}})}, [0]),
        ({"filter": json.dumps({"in": ["task_", {"var": "input"}]})}, [3]),
    ],
)
def test_listing_pages_sorts_searches_and_filters(
    client: TestClient,
    alice: dict[str, str],
    four_tasks: list[str],
    params: dict[str, Any],
    expected: list[int],
) -> None:
    response = client.get("/v1/tasks", headers=alice, params=params)

    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["results"]] == [four_tasks[index] for index in expected]


def test_listing_filters_by_input_and_times(
    client: TestClient, alice: dict[str, str], four_tasks: list[str]
) -> None:
    third = client.get(f"/v1/tasks/{four_tasks[2]}", headers=alice).json()
    rule = {"and": [{">=": [{"var": "created_at"}, third["created_at"]]}, {"<": [{"var": "progress"}, 1]}]}

    by_time = client.get(
        "/v1/tasks", headers=alice, params={"filter": json.dumps(rule), "sort": "created_at"}
    )
    by_input = client.get("/v1/tasks", headers=alice, params={"input": four_tasks[0]})

    assert [item["id"] for item in by_time.json()["results"]] == four_tasks[2:]
    assert [item["id"] for item in by_input.json()["results"]] == [four_tasks[3]]
    assert by_time.json()["count"] == 2


def test_listed_tasks_are_described_like_single_ones(
    client: TestClient, alice: dict[str, str], four_tasks: list[str]
) -> None:
    listed = client.get("/v1/tasks", headers=alice).json()["results"]

    assert listed == [client.get(f"/v1/tasks/{item['id']}", headers=alice).json() for item in listed]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"filter": json.dumps({"==": [{"var": "owner_id"}, "key_x"]})}, "filter"),
        ({"filter": json.dumps({"like": [{"var": "status"}, "q%"]})}, "filter"),
        ({"filter": json.dumps({"<": [{"var": "created_at"}, "yesterday"]})}, "filter"),
        ({"status": "sleeping"}, "status"),
        ({"sort": "parameters"}, "sort"),
    ],
)
def test_bad_listing_parameters_are_refused_with_422(
    client: TestClient, alice: dict[str, str], params: dict[str, Any], field: str
) -> None:
    body = problem(client.get("/v1/tasks", headers=alice, params=params), 422)

    assert list(body["errors"]) == [field]


def test_cancelling_a_task_wakes_the_tasks_chained_on_it(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue
) -> None:
    first = submit(client, alice, input=upload_photo(client, alice)).json()["id"]
    chained = submit(client, alice, operation="detect", input=first).json()["id"]
    queue.task_ids.clear()

    assert client.delete(f"/v1/tasks/{first}", headers=alice).status_code == 200

    assert queue.task_ids == [chained], "the chained task must run (and fail, its input cancelled), not wait"


def detections_document(**changes: Any) -> dict[str, Any]:
    """A corrected veil.detections/1 document for the 32x24 photo of `upload_photo`."""
    box = {
        "label": "face",
        "score": 1.0,
        "box": [2.0, 3.0, 12.0, 15.0],
        "track_id": None,
        "source": "detected",
    }
    return {
        "schema": "veil.detections/1",
        "media": {
            "type": "image",
            "width": 32,
            "height": 24,
            "fps": None,
            "frame_count": None,
            "duration": None,
        },
        "frames": [{"index": 0, "time": 0.0, "detections": [box]}],
        **changes,
    }


def upload_document(client: TestClient, headers: dict[str, str], document: dict[str, Any]) -> Any:
    """POST /v1/files with a render document as JSON; the answer."""
    content = json.dumps(document).encode()
    return client.post("/v1/files", headers=headers, files={"file": ("boxes.json", content, "text/plain")})


def test_a_render_task_is_queued_with_its_document_stored_as_a_file(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue, sessions: sessionmaker[Session]
) -> None:
    """GIVEN an uploaded photo and corrected detections for it, given inline
    WHEN a render task is submitted on the file
    THEN it is queued; the document is stored as a file of the key, which the task names, the task row and
    its view carry only a summary, and the whole document is fetched on its own."""
    file_id = upload_photo(client, alice)
    document = detections_document()

    response = submit(
        client, alice, operation="render", input=file_id, parameters={"detections": document, "crf": 20}
    )

    assert response.status_code == 202, response.text
    task = response.json()
    assert (task["operation"], task["status"], queue.task_ids) == ("render", "queued", [task["id"]])
    parameters = task["parameters"]
    assert (parameters["input"], parameters["crf"]) == (file_id, 20)
    assert "detections" not in parameters
    document_file = client.get(f"/v1/files/{parameters['detections_file']}", headers=alice).json()
    assert (document_file["name"], document_file["type"]) == ("detections.json", "application/json")
    assert task["render_document"] == {
        "file_id": document_file["id"],
        "media": "image",
        "width": 32,
        "height": 24,
        "frames": 1,
        "boxes": 1,
        "labels": {"face": 1},
    }
    assert (parameters["draw"], parameters["keep_audio"]) == (False, True)
    assert parameters["styles"]["face"]["method"] == "blur", "the default style per label is shown"
    assert parameters["styles"]["plate"]["shape"] == "rectangle"
    assert "detectors" not in parameters
    listed = client.get("/v1/tasks", headers=alice, params={"operation": "render"}).json()
    assert listed["results"] == [task]
    whole = client.get(f"/v1/tasks/{task['id']}/detections", headers=alice)
    assert (whole.status_code, whole.headers["content-type"]) == (200, "application/json")
    assert whole.json() == document
    with session_scope(sessions) as session:
        row = session.get_one(Task, task["id"])
        assert "frames" not in json.dumps(row.parameters)


def test_an_inline_render_document_is_not_kept_when_its_task_cannot_be_recorded(
    client: TestClient,
    alice: dict[str, str],
    sessions: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN an uploaded photo, and a database that refuses to record the render task naming it
    WHEN the task is submitted with its document inline
    THEN the error comes through and the document's bytes, which no row would record, are deleted."""
    file_id = upload_photo(client, alice)
    stored_before = sorted(path for path in settings.storage_dir.rglob("*") if path.is_file())
    request = TaskCreate(operation="render", input=file_id, parameters={"detections": detections_document()})

    with sessions() as session:
        owner = session.scalars(select(ApiKey).where(ApiKey.name == "alice")).one()

        def refuse() -> None:
            raise OperationalError("INSERT INTO tasks", {}, Exception("database is locked"))

        monkeypatch.setattr(session, "commit", refuse)
        with pytest.raises(OperationalError):
            create_task(
                session,
                owner=owner,
                settings=settings,
                storage=LocalStorage(settings.storage_dir),
                request=request,
            )

    assert sorted(path for path in settings.storage_dir.rglob("*") if path.is_file()) == stored_before


def test_a_large_render_document_is_an_upload_and_listings_stay_small(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue, sessions: sessionmaker[Session]
) -> None:
    """GIVEN a render document of 30,000 boxes (3 MB of JSON), uploaded as a file
    WHEN five render tasks name it, and the tasks are listed
    THEN the listing is a few kilobytes: each task carries the document's file id and summary, not its
    boxes, and so does each task row."""
    box = {"label": "plate", "box": [1.0, 2.0, 3.0, 4.0]}
    frames = [{"index": index, "detections": [box] * 10} for index in range(3000)]
    media = {"type": "video", "width": 32, "height": 24}
    uploaded = upload_document(client, alice, detections_document(media=media, frames=frames))
    assert uploaded.status_code == 201, uploaded.text
    document = uploaded.json()
    assert document["type"] == "application/json"
    assert document["properties"] == {
        "size": document["properties"]["size"],
        "media": "video",
        "width": 32,
        "height": 24,
        "frames": 3000,
        "boxes": 30_000,
        "labels": {"plate": 30_000},
    }
    assert document["properties"]["size"] > 1_000_000
    video = upload_photo(client, alice)  # the worker, not the API, tells a photo from the video expected
    for _ in range(5):
        parameters = {"detections_file": document["id"]}
        response = submit(client, alice, operation="render", input=video, parameters=parameters)
        assert response.status_code == 202, response.text

    listing = client.get("/v1/tasks", headers=alice, params={"page_size": 5})

    assert len(listing.content) < 8_000
    for task in listing.json()["results"]:
        assert task["parameters"]["detections_file"] == document["id"]
        assert task["render_document"]["boxes"] == 30_000
    with session_scope(sessions) as session:
        for row in session.scalars(select(Task)):
            assert len(json.dumps(row.parameters)) + len(json.dumps(row.input)) < 2_000


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        (b'{"schema": "veil.detections/1", "media": {"type": "image"', "not JSON text"),
        (b'{"frames": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON text"),
        (b'{"frames": ' + b"1" * 5000 + b"}", "not JSON text"),
        (
            json.dumps(detections_document(frames=[{"index": 0, "detections": [{"box": [5, 5, 1, 9]}]}])),
            "frames.0.detections.0.box: Value error, a box is [x1, y1, x2, y2] with x2 > x1 and y2 > y1",
        ),
        (json.dumps(detections_document(schema="veil.detections/2")), "schema: Input should be"),
        (json.dumps({**detections_document(), "extra": 1}), "extra: Extra inputs are not permitted"),
        (
            json.dumps(detections_document(frames=[{"index": 0, "detections": [{"box": [1, 2, 3, 4]}]}] * 2)),
            "frames.1: each frame index may appear once",
        ),
        (
            json.dumps(
                detections_document(
                    frames=[{"index": 0, "detections": [{"label": "\ud800", "box": [1, 2, 3, 4]}]}]
                )
            ),
            "frames.0.detections.0.label: Input should be a valid string",
        ),
    ],
)
def test_an_invalid_render_document_upload_is_refused_naming_the_place(
    client: TestClient, alice: dict[str, str], settings: Settings, content: str | bytes, refusal: str
) -> None:
    data = content.encode() if isinstance(content, str) else content
    response = client.post("/v1/files", headers=alice, files={"file": ("boxes.json", data)})

    body = problem(response, 422)
    assert body["detail"].startswith("The file is not a valid veil.detections/1 document: ")
    assert refusal in body["detail"]
    assert client.get("/v1/files", headers=alice).json()["count"] == 0


def test_a_render_document_over_its_size_limit_is_refused_with_413(
    client: TestClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("veil.core.probing.content.MAX_DOCUMENT_BYTES", 1000)
    frames = [{"index": index, "detections": [{"box": [1, 2, 3, 4]}]} for index in range(50)]
    media = {"type": "video", "width": 32, "height": 24}

    body = problem(upload_document(client, alice, detections_document(media=media, frames=frames)), 413)

    assert "1000 bytes" in body["detail"]
    assert client.get("/v1/files", headers=alice).json()["count"] == 0


def test_a_key_names_only_its_own_render_documents(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], admin: dict[str, str]
) -> None:
    document = upload_document(client, alice, detections_document()).json()["id"]

    for other in (bob, admin):
        parameters = {"detections_file": document}
        body = problem(
            submit(
                client, other, operation="render", input=upload_photo(client, other), parameters=parameters
            ),
            422,
        )
        assert body["errors"] == {"parameters.detections_file": [f"File with id {document} not found."]}


def test_a_render_document_must_be_a_document(client: TestClient, alice: dict[str, str]) -> None:
    photo = upload_photo(client, alice)

    body = problem(
        submit(client, alice, operation="render", input=photo, parameters={"detections_file": photo}), 422
    )

    assert "is no render document" in body["errors"]["parameters.detections_file"][0]


@pytest.mark.parametrize("operation", ["anonymize", "detect", "render"])
def test_a_json_file_is_no_input(client: TestClient, alice: dict[str, str], operation: str) -> None:
    document = upload_document(client, alice, detections_document()).json()["id"]
    parameters = {"detections_file": document} if operation == "render" else {}

    body = problem(submit(client, alice, operation=operation, input=document, parameters=parameters), 422)

    assert "is a JSON document, not a photo or video" in body["errors"]["input"][0]


def test_a_render_document_in_use_cannot_be_deleted(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    document = upload_document(client, alice, detections_document()).json()["id"]
    parameters = {"detections_file": document}
    task = submit(client, alice, operation="render", input=upload_photo(client, alice), parameters=parameters)

    body = problem(client.delete(f"/v1/files/{document}", headers=alice), 409)

    assert task.json()["id"] in body["detail"]
    finish(sessions, task.json()["id"])
    assert client.delete(f"/v1/files/{document}", headers=alice).status_code == 204
    problem(client.get(f"/v1/tasks/{task.json()['id']}/detections", headers=alice), 404)


def test_only_a_render_task_of_ones_own_has_a_document(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    anonymize = submit(client, alice, input=upload_photo(client, alice)).json()["id"]
    parameters = {"detections": detections_document()}
    render = submit(
        client, alice, operation="render", input=upload_photo(client, alice), parameters=parameters
    )

    problem(client.get(f"/v1/tasks/{anonymize}/detections", headers=alice), 404)
    problem(client.get(f"/v1/tasks/{render.json()['id']}/detections", headers=bob), 404)


def test_a_render_box_needs_only_its_corners(client: TestClient, alice: dict[str, str]) -> None:
    document = detections_document(frames=[{"index": 0, "detections": [{"box": [1, 1, 5, 5]}]}])

    response = submit(
        client,
        alice,
        operation="render",
        input=upload_photo(client, alice),
        parameters={"detections": document},
    )

    assert response.status_code == 202, response.text
    [box] = client.get(f"/v1/tasks/{response.json()['id']}/detections", headers=alice).json()["frames"][0][
        "detections"
    ]
    assert box == {
        "label": "face",
        "score": 1.0,
        "box": [1.0, 1.0, 5.0, 5.0],
        "track_id": None,
        "source": "detected",
    }


_BOX = "parameters.detections.frames.0.detections.0"


@pytest.mark.parametrize(
    ("parameters", "fields"),
    [
        ({}, ["parameters"]),
        ({"detections": detections_document(), "detections_file": "file_abc"}, ["parameters"]),
        ({"detections_file": "../etc/passwd"}, ["parameters.detections_file"]),
        ({"detections": detections_document(schema="veil.detections/2")}, ["parameters.detections.schema"]),
        (
            {"detections": detections_document(frames=[{"index": 0, "detections": [{"box": [5, 5, 1, 9]}]}])},
            [f"{_BOX}.box"],
        ),
        (
            {"detections": detections_document(frames=[{"index": 0, "detections": [{"box": [1, 2, 3]}]}])},
            [f"{_BOX}.box.3"],
        ),
        (
            {
                "detections": detections_document(
                    frames=[{"index": 0, "detections": [{"box": [1, 2, 3, "inf"]}]}]
                )
            },
            [f"{_BOX}.box.3"],
        ),
        (
            {
                "detections": detections_document(
                    frames=[{"index": 0, "detections": [{"box": [1, 2, 3, 4], "score": 2}]}]
                )
            },
            [f"{_BOX}.score"],
        ),
        (
            {
                "detections": detections_document(
                    frames=[{"index": 0, "detections": [{"box": [1, 2, 3, 4], "x": 1}]}]
                )
            },
            [f"{_BOX}.x"],
        ),
        (
            {"detections": detections_document(frames=[{"index": 0, "detections": []}])},
            ["parameters.detections.frames.0.detections"],
        ),
        (
            {"detections": detections_document(frames=[{"index": 3, "detections": [{"box": [1, 2, 3, 4]}]}])},
            ["parameters.detections"],
        ),
        (
            {"detections": detections_document(media={"type": "image", "width": 0, "height": 24})},
            ["parameters.detections.media.width"],
        ),
        ({"detections": detections_document(), "detectors": ["face"]}, ["parameters.detectors"]),
        ({"detections": detections_document(), "crf": 99}, ["parameters.crf"]),
    ],
)
def test_a_malformed_render_document_is_refused_naming_the_field(
    client: TestClient,
    alice: dict[str, str],
    queue: RecordingQueue,
    parameters: dict[str, Any],
    fields: list[str],
) -> None:
    file_id = upload_photo(client, alice)

    refused = problem(submit(client, alice, operation="render", input=file_id, parameters=parameters), 422)

    assert sorted(refused["errors"]) == fields
    assert queue.task_ids == []


def test_a_render_document_repeating_a_frame_is_refused(client: TestClient, alice: dict[str, str]) -> None:
    frame = {"index": 4, "detections": [{"box": [1, 2, 3, 4]}]}
    document = detections_document(media={"type": "video", "width": 32, "height": 24}, frames=[frame, frame])

    refused = problem(
        submit(
            client,
            alice,
            operation="render",
            input=upload_photo(client, alice),
            parameters={"detections": document},
        ),
        422,
    )

    assert refused["errors"] == {
        "parameters.detections": [
            "Value error, each frame index may appear once; list every box of a frame in that frame"
        ]
    }


def test_a_render_document_has_a_box_limit(
    monkeypatch: pytest.MonkeyPatch, client: TestClient, alice: dict[str, str]
) -> None:
    monkeypatch.setattr("veil.core.parameters.MAX_RENDER_BOXES", 2)
    boxes = [{"box": [1, 2, 3, 4]}] * 2
    frames = [{"index": index, "detections": boxes} for index in range(2)]
    document = detections_document(media={"type": "video", "width": 32, "height": 24}, frames=frames)

    refused = problem(
        submit(
            client,
            alice,
            operation="render",
            input=upload_photo(client, alice),
            parameters={"detections": document},
        ),
        422,
    )

    assert "4 boxes; a document may list at most 2" in refused["errors"]["parameters.detections"][0]


def test_a_render_task_works_on_a_file_not_a_task(
    client: TestClient, alice: dict[str, str], queue: RecordingQueue, sessions: sessionmaker[Session]
) -> None:
    """GIVEN a completed anonymize task
    WHEN a render task names that task as its input
    THEN it is refused on `input`: boxes belong to the original file, whose id the client gives."""
    upstream = submit(client, alice, input=upload_photo(client, alice)).json()["id"]
    finish(sessions, upstream)
    queue.task_ids.clear()

    refused = problem(
        submit(
            client,
            alice,
            operation="render",
            input=upstream,
            parameters={"detections": detections_document()},
        ),
        422,
    )

    assert list(refused["errors"]) == ["input"]
    assert "file id" in refused["errors"]["input"][0]
    assert queue.task_ids == []


def test_a_task_names_its_input_file_even_after_the_file_is_gone(
    client: TestClient, alice: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    file_id = upload_photo(client, alice, name="street corner.png")
    task = submit(client, alice, input=file_id).json()
    finish(sessions, task["id"])
    chained = submit(client, alice, input=task["id"]).json()
    with session_scope(sessions) as session:
        session.execute(delete(StoredFile).where(StoredFile.id == file_id))  # as when it expires

    listed = client.get("/v1/tasks", headers=alice).json()["results"]

    assert task["input_name"] == chained["input_name"] == "street corner.png"
    assert {listed_task["id"]: listed_task["input_name"] for listed_task in listed} == {
        task["id"]: "street corner.png",
        chained["id"]: "street corner.png",
    }
