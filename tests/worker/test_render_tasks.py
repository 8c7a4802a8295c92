"""`run_task` on `/v1` render tasks, called directly: given boxes obscured with no detector, the media and the
detections JSON generated like `anonymize`, and clear failures when the boxes do not fit the input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from tests.engine.video_factory import make_video, square_box
from tests.helpers import FACE_BOX, load_rgb, save_image, validate_report
from tests.worker.conftest import generated, key_row, submit, task_row, upload
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, Task
from veil.engine.anonymizer import AnonymizeOptions
from veil.engine.detectors.base import DetectorConfig
from veil.engine.errors import ModelError
from veil.engine.redactors.style import ObscureStyle
from veil.engine.video import VideoOptions
from veil.worker.context import WorkerContext
from veil.worker.options import InvalidParametersError, engine_request, render_request
from veil.worker.tasks import run_task


def document(
    frames: dict[int, list[dict[str, Any]]], media_type: str = "image", width: int = 200, height: int = 150
) -> dict[str, Any]:
    """A veil.detections/1 document listing `frames` (index -> boxes)."""
    return {
        "schema": "veil.detections/1",
        "media": {"type": media_type, "width": width, "height": height},
        "frames": [
            {"index": index, "time": index / 25, "detections": boxes} for index, boxes in frames.items()
        ],
    }


@pytest.fixture(autouse=True)
def no_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A render task must not load any detector."""

    def refuse(name: str, config: DetectorConfig) -> Any:
        raise ModelError(f"render loaded detector {name}")

    monkeypatch.setattr("veil.engine.anonymizer.load_detector", refuse)


@pytest.fixture
def photo(context: WorkerContext, owner: ApiKey, tmp_path: Path) -> Any:
    return upload(context, owner, save_image(tmp_path / "photo.png"))


def test_render_a_photo(context: WorkerContext, owner: ApiKey, photo: Any) -> None:
    """GIVEN an uploaded photo and a document with one box a person added (label "person")
    WHEN the render task runs
    THEN it completes with the photo obscured at that box only and the detections JSON, named like
    anonymize's outputs, and the key's counters grow by one file."""
    parameters = {"detections": document({0: [{"label": "person", "box": list(FACE_BOX)}]})}
    task_id = submit(context, owner, photo.id, operation="render", parameters=parameters)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.error) == ("completed", None)
    assert task.result == {"detections": {"person": 1}, "frames": 1}
    media, report = generated(context, task_id)
    assert (media.name, media.media_type, report.name) == ("photo.png", "image/png", "photo.png.json")
    original = load_rgb(context.storage.path(photo.storage_key))
    rendered = load_rgb(context.storage.path(media.storage_key))
    x1, y1, x2, y2 = (int(v) for v in FACE_BOX)
    assert rendered[y1:y2, x1:x2].std() < original[y1:y2, x1:x2].std() / 3
    assert np.array_equal(rendered[:, 150:], original[:, 150:])
    saved = validate_report(context.storage.path(report.storage_key))
    assert saved["media"] == {
        "type": "image",
        "width": 200,
        "height": 150,
        "fps": None,
        "frame_count": None,
        "duration": None,
    }
    assert saved["frames"] == [
        {
            "index": 0,
            "time": 0.0,
            "detections": [
                {
                    "label": "person",
                    "score": 1.0,
                    "box": list(FACE_BOX),
                    "track_id": None,
                    "source": "detected",
                }
            ],
        }
    ]
    key = key_row(context, owner.id)
    assert (key.files_processed, key.bytes_processed) == (1, photo.size)


def test_render_a_video(context: WorkerContext, owner: ApiKey, tmp_path: Path) -> None:
    """GIVEN a video and one track's boxes on two of its frames
    WHEN the render task runs
    THEN the output keeps every frame, the track counts once, and the JSON lists the two frames."""
    clip = make_video(tmp_path / "clip.mp4", frames=8)
    source = upload(context, owner, clip.path)
    boxes = {i: [{"box": list(square_box(i)), "track_id": 4, "score": 0.8}] for i in (2, 3)}
    parameters = {"detections": document(boxes, "video", 320, 240), "crf": 18}
    task_id = submit(context, owner, source.id, operation="render", parameters=parameters)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.result) == ("completed", {"detections": {"face": 1}, "frames": 8})
    media, report = generated(context, task_id)
    assert (media.name, media.media_type, media.properties["frame_count"]) == ("clip.mp4", "video/mp4", 8)
    saved = validate_report(context.storage.path(report.storage_key))
    assert [frame["index"] for frame in saved["frames"]] == [2, 3]
    assert saved["frames"][0]["detections"][0]["track_id"] == 4
    assert saved["media"]["frame_count"] == 8
    assert key_row(context, owner.id).frames_processed == 8


@pytest.mark.parametrize(
    ("given", "detail"),
    [
        (document({0: [{"box": [1, 1, 9, 9]}]}, width=150, height=200), "made for 150x200"),
        (document({0: [{"box": [1, 1, 9, 9]}]}, "video", 200, 150), "for a video, the input is a photo"),
    ],
)
def test_detections_for_other_media_fail_the_task(
    context: WorkerContext, owner: ApiKey, photo: Any, given: dict[str, Any], detail: str
) -> None:
    task_id = submit(context, owner, photo.id, operation="render", parameters={"detections": given})
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "failed"
    assert task.error is not None
    assert task.error["title"] == "Detections do not match the input"
    assert detail in task.error["detail"]
    assert generated(context, task_id) == []
    assert not (context.storage.root / owner.id / task_id / "1").exists()


@pytest.mark.parametrize("inline", [False, True])  # inline: a task row from before documents were files
def test_render_request_maps_the_document_and_output_options(inline: bool) -> None:
    given = document(
        {
            0: [{"box": [1, 2, 3, 4]}],
            5: [
                {"label": "plate", "score": 0.5, "box": [5, 6, 7, 8], "track_id": 2, "source": "tracked"},
                {"box": [0, 0, 1, 1]},
            ],
        },
        "video",
    )
    parameters = {"keep_audio": False, "styles": {"face": {"method": "fill"}}, "draw": True}
    if inline:
        request = render_request({**parameters, "detections": given}, None)
    else:
        request = render_request({**parameters, "detections_file": "file_doc"}, json.dumps(given).encode())

    assert (request.media_type, request.size_wh) == ("video", (200, 150))
    assert sorted(request.boxes_by_frame) == [0, 5]
    frame = request.boxes_by_frame[5]
    np.testing.assert_array_equal(frame.xyxy, [[5, 6, 7, 8], [0, 0, 1, 1]])
    assert frame.label.tolist() == ["plate", "face"]
    assert frame.track_id.tolist() == [2, -1]
    assert frame.source.tolist() == ["tracked", "detected"]
    np.testing.assert_allclose(frame.confidence, [0.5, 1.0])
    assert request.options.draw is True
    assert request.options.video == VideoOptions(keep_audio=False, draw=True)
    assert request.options.styles.for_label("face") == ObscureStyle(method="fill")
    assert request.options.keep_metadata == AnonymizeOptions().keep_metadata


def upload_document(context: WorkerContext, owner: ApiKey, tmp_path: Path, given: dict[str, Any]) -> Any:
    path = tmp_path / "corrected.json"
    path.write_text(json.dumps(given))
    return upload(context, owner, path)


def test_render_reads_the_document_file_the_task_names(
    context: WorkerContext, owner: ApiKey, photo: Any, tmp_path: Path
) -> None:
    """GIVEN a document uploaded as a file and a render task naming it
    WHEN the task runs
    THEN the boxes of the file are obscured (the task row never held them)."""
    document_file = upload_document(context, owner, tmp_path, document({0: [{"box": list(FACE_BOX)}]}))
    parameters = {"detections_file": document_file.id}
    task_id = submit(context, owner, photo.id, operation="render", parameters=parameters)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert (task.status, task.result) == ("completed", {"detections": {"face": 1}, "frames": 1})
    assert task.parameters["detections_file"] == document_file.id and "detections" not in task.parameters


def test_a_render_task_whose_document_is_gone_fails_saying_so(
    context: WorkerContext, owner: ApiKey, photo: Any, tmp_path: Path
) -> None:
    document_file = upload_document(context, owner, tmp_path, document({0: [{"box": list(FACE_BOX)}]}))
    task_id = submit(
        context, owner, photo.id, operation="render", parameters={"detections_file": document_file.id}
    )
    context.storage.delete(document_file.storage_key)
    run_task(context, task_id)

    task = task_row(context, task_id)
    assert task.status == "failed" and task.error is not None
    assert task.error == {
        "title": "Input not found",
        "detail": f"the render document, file {document_file.id}, no longer exists",
    }


def test_a_render_task_stored_with_its_document_inline_still_runs(
    context: WorkerContext, owner: ApiKey, photo: Any
) -> None:
    """Rows made before documents were files hold the document in their parameters."""
    inline = {"detections": document({0: [{"box": list(FACE_BOX)}]})}
    task_id = submit(context, owner, photo.id, operation="render", parameters=inline)
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id == task_id).values(parameters=inline))
    run_task(context, task_id)

    assert task_row(context, task_id).status == "completed"


def test_a_render_task_asks_no_detectors() -> None:
    with pytest.raises(InvalidParametersError, match="runs no detectors"):
        engine_request("render", {"detections": document({})})
