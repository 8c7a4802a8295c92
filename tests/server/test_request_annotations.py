"""A task's detections exported and imported in the annotation formats, as background requests, with the
worker's functions called directly and the scripted face detector: formats listed, exports with and
without images, round trips that render what was exported back to the same output, and bad imports
failing with nothing stored."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.engine.video_factory import make_video
from tests.helpers import FACE_BOX, RecordingQueue
from tests.server.conftest import make_key
from tests.server.test_requests import (
    anonymized,
    context,
    download,
    other_instance,
    run_requests,
    started,
    upload_photo,
)
from tests.server.test_tasks import problem
from veil.core.database.models import BackgroundRequest, StoredFile, Task
from veil.engine.annotations import formats
from veil.worker import requests as requests_worker
from veil.worker.context import WorkerContext
from veil.worker.tasks import run_task

__all__ = ["context"]  # the fixture, shared with test_requests

pytestmark = pytest.mark.usefixtures("one_face")

COCO = "COCO 1.0"
CVAT_VIDEO = "CVAT for video 1.1"
YOLO = "Ultralytics YOLO Detection 1.0"


def request(client: TestClient, headers: dict[str, str], rq_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/requests/{rq_id}", headers=headers).json()
    return body


def exported(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    headers: dict[str, str],
    path: str,
    **params: Any,
) -> bytes:
    """The zip an export request at `path` makes, once run."""
    rq_id = started(client.post(path, headers=headers, params=params))
    run_requests(context, queue)
    finished = request(client, headers, rq_id)
    assert (finished["status"], finished["message"]) == ("finished", ""), finished
    return download(client, headers, finished["result_url"])


def imported(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    headers: dict[str, str],
    task_id: str,
    data: bytes,
    **params: Any,
) -> dict[str, Any]:
    """The request importing `data` into the task, once run (and any render task it started, too)."""
    files = {"file": ("annotations.zip", data, "application/zip")}
    rq_id = started(
        client.post(f"/v1/tasks/{task_id}/annotations", headers=headers, params=params, files=files)
    )
    run_requests(context, queue)
    while queue.task_ids:
        run_task(context, queue.task_ids.pop(0))
    return request(client, headers, rq_id)


def video_task(client: TestClient, context: WorkerContext, headers: dict[str, str], tmp_path: Path) -> str:
    clip = make_video(tmp_path / "clip.mp4", frames=12, audio=None)
    files = {"file": ("clip.mp4", clip.path.read_bytes(), "video/mp4")}
    file_id = client.post("/v1/files", headers=headers, files=files).json()["id"]
    task_id: str = client.post(
        "/v1/tasks", headers=headers, json={"operation": "anonymize", "input": file_id}
    ).json()["id"]
    run_task(context, task_id)
    return task_id


def output_media(client: TestClient, headers: dict[str, str], task_id: str) -> bytes:
    task = client.get(f"/v1/tasks/{task_id}", headers=headers).json()
    assert task["status"] == "completed", task
    media = task["result"]["generated_files"][0]
    assert media["type"].startswith(("image/", "video/"))
    return download(client, headers, f"/v1/files/{media['id']}/content")


def video_frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data), "r") as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def stored_counts(context: WorkerContext) -> tuple[int, int]:
    with context.sessions() as session:
        files = session.scalar(select(func.count()).select_from(StoredFile)) or 0
        tasks = session.scalar(select(func.count()).select_from(Task)) or 0
    return files, tasks


def test_the_formats_are_the_librarys(client: TestClient, alice: dict[str, str]) -> None:
    listed = client.get("/v1/formats", headers=alice).json()["results"]
    assert [item["name"] for item in listed] == [info.name for info in formats()]
    video = next(item for item in listed if item["name"] == CVAT_VIDEO)
    assert video == {
        "name": CVAT_VIDEO,
        "version": "1.1",
        "ext": "ZIP",
        "can_export": True,
        "can_import": True,
        "media": ["video"],
        "tracks": True,
        "scores": True,
    }
    problem(client.get("/v1/formats"), 401)


def test_annotations_export_as_coco_without_images(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    task_id = anonymized(client, context, alice)
    data = exported(client, context, queue, alice, f"/v1/tasks/{task_id}/annotations/export", format=COCO)

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (name,) = [name for name in archive.namelist() if name.endswith(".json")]
        assert not [name for name in archive.namelist() if name.endswith(".png")]
        coco = json.loads(archive.read(name))
    (annotation,) = coco["annotations"]
    x1, y1, x2, y2 = FACE_BOX
    assert annotation["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.5)
    rq = client.get("/v1/requests", headers=alice).json()["results"][0]
    assert rq["operation"] == {
        "type": "export:annotations",
        "target": "task",
        "task_id": task_id,
        "task_ids": None,
        "format": COCO,
    }


@pytest.mark.parametrize("media", ["anonymized", "original"])
def test_a_dataset_holds_the_anonymized_media_unless_the_original_is_asked_for(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str], media: str
) -> None:
    task_id = anonymized(client, context, alice)
    params = {"format": COCO, "save_images": "true", "media": media}
    data = exported(client, context, queue, alice, f"/v1/tasks/{task_id}/dataset/export", **params)

    task = client.get(f"/v1/tasks/{task_id}", headers=alice).json()
    file_id = (
        task["result"]["generated_files"][0]["id"] if media == "anonymized" else task["parameters"]["input"]
    )
    expected = download(client, alice, f"/v1/files/{file_id}/content")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (image,) = [name for name in archive.namelist() if name.endswith(".png")]
        assert archive.read(image) == expected
    assert request(client, alice, client.get("/v1/requests", headers=alice).json()["results"][0]["id"])[
        "operation"
    ]["type"] == ("export:dataset")


def test_export_requests_are_checked_when_asked_for(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    task_id = anonymized(client, context, alice)
    export = f"/v1/tasks/{task_id}/dataset/export"

    errors = problem(client.post(export, headers=alice, params={"format": "CSV"}), 422)["errors"]
    assert errors["format"] == [
        f"Veil cannot export 'CSV'; the formats are: {', '.join(i.name for i in formats())}."
    ]
    problem(client.post(export, headers=alice), 422)
    problem(client.post(export, headers=alice, params={"format": COCO, "frame_step": 0}), 422)
    problem(client.post(export, headers=alice, params={"format": COCO, "media": "raw"}), 422)
    problem(client.post(export, headers=bob, params={"format": COCO}), 404)
    queued = client.post(
        "/v1/tasks", headers=alice, json={"operation": "detect", "input": upload_photo(client, alice)}
    )
    detect = f"/v1/tasks/{queued.json()['id']}/dataset/export"
    assert "queued" in problem(client.post(detect, headers=alice, params={"format": COCO}), 409)["detail"]
    run_task(context, queued.json()["id"])
    params = {"format": COCO, "save_images": "true"}
    assert "media=original" in problem(client.post(detect, headers=alice, params=params), 409)["detail"]
    assert queue.requests == []


def test_several_tasks_export_as_one_dataset_each_under_its_id(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    """GIVEN two anonymized photos of the same name, in two tasks
    WHEN they are exported together as a COCO dataset with images
    THEN the zip holds each task's anonymized photo and box under a folder named by the task's id, and the
    request names both tasks."""
    task_ids = [anonymized(client, context, alice) for _ in range(2)]
    body = {"task_ids": task_ids, "format": COCO, "save_images": True}
    rq_id = started(client.post("/v1/datasets/export", headers=alice, json=body))
    run_requests(context, queue)
    done = request(client, alice, rq_id)

    assert done["operation"] == {
        "type": "export:dataset",
        "target": "dataset",
        "task_id": None,
        "task_ids": task_ids,
        "format": COCO,
    }
    with zipfile.ZipFile(io.BytesIO(download(client, alice, done["result_url"]))) as archive:
        coco = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith(".json"))))
        images = {image["id"]: image["file_name"] for image in coco["images"]}
        assert sorted(images.values()) == sorted(f"{task_id}/photo.png" for task_id in task_ids)
        for task_id in task_ids:
            (stored,) = [n for n in archive.namelist() if n.endswith(f"{task_id}/photo.png")]
            assert archive.read(stored) == output_media(client, alice, task_id)
    x1, y1, x2, y2 = FACE_BOX
    boxes = sorted((images[a["image_id"]], tuple(a["bbox"])) for a in coco["annotations"])
    assert [name for name, _ in boxes] == sorted(images.values())
    for _, bbox in boxes:
        assert bbox == pytest.approx((x1, y1, x2 - x1, y2 - y1), abs=0.5)


def test_a_dataset_export_is_checked_when_asked_for(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    bob: dict[str, str],
) -> None:
    mine = anonymized(client, context, alice)
    theirs = anonymized(client, context, bob)
    queued = client.post(
        "/v1/tasks", headers=alice, json={"operation": "anonymize", "input": upload_photo(client, alice)}
    ).json()["id"]

    def asked(task_ids: list[str], status: int, **more: Any) -> dict[str, Any]:
        body = {"task_ids": task_ids, "format": COCO, **more}
        return problem(client.post("/v1/datasets/export", headers=alice, json=body), status)

    assert "repeated: " + mine in str(asked([mine, mine], 422)["errors"])
    asked([], 422)
    asked([mine], 422, format="CSV")
    asked([mine], 422, frame_step=0)
    assert theirs in asked([mine, theirs], 404)["detail"]
    assert "queued" in asked([mine, queued], 409)["detail"]
    assert queue.requests == []


@pytest.mark.parametrize("format_name", [COCO, YOLO])
def test_a_photo_exported_imported_unchanged_renders_the_same_output(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str], format_name: str
) -> None:
    task_id = anonymized(client, context, alice)
    path = f"/v1/tasks/{task_id}/annotations/export"
    data = exported(client, context, queue, alice, path, format=format_name)

    done = imported(client, context, queue, alice, task_id, data, format=format_name, render="true")

    assert (done["status"], done["message"]) == ("finished", ""), done
    assert done["operation"]["type"] == "import:annotations"
    document = json.loads(download(client, alice, done["result_url"]))
    (box,) = document["frames"][0]["detections"]
    assert box["box"] == pytest.approx(list(FACE_BOX), abs=0.5)
    assert client.get(f"/v1/files/{done['result_id']}", headers=alice).json()["task_id"] == task_id
    assert output_media(client, alice, done["render_task_id"]) == output_media(client, alice, task_id)


def corrected(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, headers: dict[str, str], task_id: str
) -> list[float]:
    """Imports the task's COCO export with its box moved 10 px right; the moved box (COCO xywh)."""
    path = f"/v1/tasks/{task_id}/annotations/export"
    coco = json.loads(_coco_json(exported(client, context, queue, headers, path, format=COCO)))
    coco["annotations"][0]["bbox"][0] += 10
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("annotations/instances_default.json", json.dumps(coco))
    done = imported(client, context, queue, headers, task_id, data.getvalue(), format=COCO)
    assert done["status"] == "finished", done
    moved: list[float] = coco["annotations"][0]["bbox"]
    return moved


def exported_box(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, headers: dict[str, str], task_id: str
) -> list[float]:
    path = f"/v1/tasks/{task_id}/annotations/export"
    (annotation,) = json.loads(_coco_json(exported(client, context, queue, headers, path, format=COCO)))[
        "annotations"
    ]
    box: list[float] = annotation["bbox"]
    return box


def test_an_export_after_an_import_carries_the_corrected_boxes(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    task_id = anonymized(client, context, alice)
    moved = corrected(client, context, queue, alice, task_id)

    assert exported_box(client, context, queue, alice, task_id) == pytest.approx(moved, abs=0.5)


def test_restored_corrections_stay_the_tasks_annotations_and_render_again(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN a task whose box was corrected by an import, backed up
    WHEN the backup is restored on another Veil instance
    THEN the restored task exports the corrected box, and a render task may name its corrected document."""
    task_id = anonymized(client, context, alice)
    moved = corrected(client, context, queue, alice, task_id)
    rq_id = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    run_requests(context, queue)
    backup = download(client, alice, request(client, alice, rq_id)["result_url"])

    with other_instance(tmp_path / "other") as (other, other_context, other_queue):
        carol = make_key(other_context.sessions, "carol")
        files = {"file": ("backup.zip", backup, "application/zip")}
        restore_id = started(other.post("/v1/tasks/backup", headers=carol, files=files))
        run_requests(other_context, other_queue)
        restored = other.get(
            f"/v1/tasks/{request(other, carol, restore_id)['result_id']}", headers=carol
        ).json()

        box = exported_box(other, other_context, other_queue, carol, restored["id"])
        with other_context.sessions() as session:
            document = session.scalars(
                select(StoredFile.id).where(
                    StoredFile.task_id == restored["id"], StoredFile.name.endswith(".corrected.json")
                )
            ).one()
        body = {
            "operation": "render",
            "input": restored["parameters"]["input"],
            "parameters": {"detections_file": document},
        }
        render = other.post("/v1/tasks", headers=carol, json=body)
        assert render.status_code == 202, render.text
        run_task(other_context, other_queue.task_ids.pop())
        rendered = other.get(f"/v1/tasks/{render.json()['id']}", headers=carol).json()

    assert box == pytest.approx(moved, abs=0.5)
    assert rendered["status"] == "completed", rendered
    assert rendered["render_document"]["boxes"] == 1


def test_an_import_reads_finished_only_with_its_render_task_named_and_queued(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GIVEN an import with render=true WHEN the request's finishing transaction commits THEN the request
    already names its render task, which is recorded as queued: a client that sees `finished` can follow
    the render, and a worker dying just after the commit loses no render."""
    task_id = anonymized(client, context, alice)
    data = exported(client, context, queue, alice, f"/v1/tasks/{task_id}/annotations/export", format=COCO)
    seen_at_finish: list[dict[str, Any]] = []
    finish = requests_worker._finish

    def finish_and_look(run: requests_worker.Run) -> None:
        finish(run)
        with context.sessions() as session:
            row = session.get_one(BackgroundRequest, run.request.id)
            render_id = row.parameters.get("render_task_id")
            render = session.get(Task, render_id) if render_id else None
            seen_at_finish.append({"status": row.status, "render": render and render.status})

    monkeypatch.setattr(requests_worker, "_finish", finish_and_look)
    done = imported(client, context, queue, alice, task_id, data, format=COCO, render="true")

    assert done["status"] == "finished", done
    assert seen_at_finish == [{"status": "finished", "render": "queued"}]


def test_an_import_whose_render_cannot_start_keeps_the_annotations_and_says_why(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    task_id = anonymized(client, context, alice)
    data = exported(client, context, queue, alice, f"/v1/tasks/{task_id}/annotations/export", format=COCO)
    files = {"file": ("annotations.zip", data, "application/zip")}
    params = {"format": COCO, "render": "true"}
    path = f"/v1/tasks/{task_id}/annotations"
    rq_id = started(client.post(path, headers=alice, params=params, files=files))
    original = client.get(f"/v1/tasks/{task_id}", headers=alice).json()["parameters"]["input"]
    assert client.delete(f"/v1/files/{original}", headers=alice).status_code == 204

    run_requests(context, queue)
    done = request(client, alice, rq_id)

    assert done["status"] == "finished", done
    assert done["message"].startswith("The annotations are stored; the render task did not start:")
    assert done["render_task_id"] is None and done["result_id"].startswith("file_")
    with context.sessions() as session:
        assert session.scalar(select(func.count()).where(Task.operation == "render")) == 0


def _coco_json(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".json")]
        return archive.read(name)


def test_a_video_exported_as_cvat_for_video_imported_unchanged_renders_the_same_output(
    client: TestClient, context: WorkerContext, queue: RecordingQueue, alice: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN an anonymized video exported as CVAT for video 1.1
    WHEN the file is imported unchanged with render=true and the render task runs
    THEN the rendered video is the task's own output, frame for frame, and the boxes agree with its
    detections within half a pixel."""
    task_id = video_task(client, context, alice, tmp_path)
    data = exported(
        client, context, queue, alice, f"/v1/tasks/{task_id}/annotations/export", format=CVAT_VIDEO
    )

    done = imported(client, context, queue, alice, task_id, data, format=CVAT_VIDEO, render="true")

    assert (done["status"], done["message"]) == ("finished", ""), done
    document = json.loads(download(client, alice, done["result_url"]))
    assert len(document["frames"]) == 12
    for frame in document["frames"]:
        assert [box["box"] for box in frame["detections"]] == [pytest.approx(list(FACE_BOX), abs=0.5)]
    first = output_media(client, alice, task_id)
    again = output_media(client, alice, done["render_task_id"])
    pairs = list(zip(video_frames(again), video_frames(first), strict=True))
    assert len(pairs) == 12
    assert all(np.array_equal(a, b) for a, b in pairs)


def _zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


HOSTILE_IMPORTS = {
    "entity expansion": (
        _zipped(
            {
                "annotations.xml": b'<?xml version="1.0"?>\n'
                b'<!DOCTYPE a [<!ENTITY x "xx"><!ENTITY y "&x;&x;&x;&x;">]>\n<annotations>&y;</annotations>'
            }
        ),
        "XML with a DTD or entities is refused",
    ),
    "a member outside its folder": (
        _zipped({"annotations.xml": b"<annotations/>", "../annotations.xml": b"<annotations/>"}),
        "would be written outside its folder",
    ),
    "a zip bomb": (
        _zipped({"annotations.xml": b"<annotations>" + b" " * 5_000_000 + b"</annotations>"}),
        "expands too far",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_IMPORTS)
def test_a_hostile_import_fails_saying_why_and_stores_nothing(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    tmp_path: Path,
    case: str,
) -> None:
    data, said = HOSTILE_IMPORTS[case]
    task_id = video_task(client, context, alice, tmp_path)
    before = stored_counts(context)

    done = imported(client, context, queue, alice, task_id, data, format=CVAT_VIDEO, render="true")

    assert (done["status"], done["render_task_id"]) == ("failed", None)
    assert said in done["message"]
    assert stored_counts(context) == before
    assert not list(context.settings.storage_dir.rglob(f"*{done['id']}*"))


BAD_IMPORTS = [
    ("a COCO file read as CVAT", COCO, CVAT_VIDEO, None, "annotations.zip: no CVAT annotations.xml in it"),
    (
        "an unknown label",
        COCO,
        COCO,
        ("face", "person"),
        "annotations.zip: clip.mp4 frame 0: unknown label 'person'; Veil knows face, plate",
    ),
    ("not a zip", None, COCO, None, "annotations.zip: no COCO annotations/instances_*.json file in it"),
]


@pytest.mark.parametrize(("case", "written_as", "read_as", "relabel", "said"), BAD_IMPORTS)
def test_a_bad_import_fails_saying_why_and_stores_nothing(
    client: TestClient,
    context: WorkerContext,
    queue: RecordingQueue,
    alice: dict[str, str],
    tmp_path: Path,
    case: str,
    written_as: str | None,
    read_as: str,
    relabel: tuple[str, str] | None,
    said: str,
) -> None:
    task_id = video_task(client, context, alice, tmp_path)
    data = b"\x00 nothing Veil reads"
    if written_as is not None:
        data = exported(
            client, context, queue, alice, f"/v1/tasks/{task_id}/annotations/export", format=written_as
        )
    if relabel is not None:
        data = _relabel_coco(data, *relabel)
    before = stored_counts(context)

    done = imported(client, context, queue, alice, task_id, data, format=read_as, render="true")

    assert done["status"] == "failed", case
    assert done["message"] == said
    assert (done["result_url"], done["render_task_id"]) == (None, None)
    assert stored_counts(context) == before
    assert not list(context.settings.storage_dir.rglob(f"*{done['id']}*"))


def _relabel_coco(data: bytes, old: str, new: str) -> bytes:
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name.endswith(".json"):
                coco = json.loads(content)
                for category in coco["categories"]:
                    category["name"] = new if category["name"] == old else category["name"]
                content = json.dumps(coco).encode()
            target.writestr(name, content)
    return out.getvalue()
