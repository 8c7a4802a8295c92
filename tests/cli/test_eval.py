"""`veil eval` end to end: labels as COCO and YOLO for photos, CVAT and MOT for a video, detections from files
or from the scripted detectors, the summary table, the report, and each refusal as one clear line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.engine.video_factory import find_square
from tests.evaluation_data import (
    LABELLED,
    VIDEO,
    photo_labels,
    video_detections,
    video_labels,
    write_coco,
    write_detections,
    write_labels,
    write_photos,
    write_video,
    write_yolo,
)
from veil.cli.app import app
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.fake import FakeDetector

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-cli")
    write_labels(root / "two.zip", {VIDEO: video_labels(), "other.mp4": video_labels()}, "CVAT for video 1.1")
    write_photos(root / "images")
    write_video(root / "images")
    write_coco(root / "coco.json")
    write_yolo(root / "yolo")
    write_detections(root / "dets", video=video_detections())
    write_labels(root / "video.zip", {VIDEO: video_labels()}, "CVAT for video 1.1")
    write_labels(root / "mot.zip", {VIDEO: video_labels()}, "MOT 1.1")
    write_labels(root / "mixed.zip", {**photo_labels(), VIDEO: video_labels()}, "CVAT for images 1.1")
    return root


def _eval(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["eval", *args])
    return result.exit_code, result.output


def _results(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "results.json").read_text()))


@pytest.mark.parametrize(("labels", "fmt"), [("coco.json", "coco"), ("yolo", "yolo")])
def test_detections_folder_scored_by_size(dataset: Path, tmp_path: Path, labels: str, fmt: str) -> None:
    """GIVEN two labelled photos (COCO file or YOLO folder) and `veil detect`'s files for them
    WHEN `veil eval --detections` runs
    THEN the table and results.json give recall per size bucket, and the report a crop per miss."""
    out = tmp_path / "report"
    images, dets = str(dataset / "images"), str(dataset / "dets")
    code, output = _eval("--labels", str(dataset / labels), "--format", fmt, "--images", images,
                         "--detections", dets, "-o", str(out))  # fmt: skip
    assert code == 0, output
    assert re.search(r"face\s.*\b6\b.*\b4\b.*66\.7%.*0\.0%.*50\.0%.*100\.0%.*100\.0%.*1\.00", output)
    assert "missed boxes: 3" in output and f"report: {out / 'index.html'}" in output.replace("\n", "")
    results = _results(out)
    assert results["labels"]["face"]["recall"] == {
        "all": 0.6667,
        "<16": 0.0,
        "16-31": 0.5,
        "32-95": 1.0,
        "96+": 1.0,
    }
    page = (out / "index.html").read_text()
    assert "<svg" in page and len(re.findall(r'<img src="misses/', page)) == 3


def test_run_scores_the_detectors_on_the_photos(
    dataset: Path, tmp_path: Path, scripted_detectors: Callable[[Detections], None]
) -> None:
    """GIVEN a scripted detector finding a.png's 20 px and 130 px faces on every photo
    WHEN `veil eval --run` runs, and `veil eval --detections` on what `veil detect` writes
    THEN 2 of 6 faces are found and both boxes on sub/b.jpg are unmatched, the same both ways."""
    boxes = [box for label, box in LABELLED["a.png"] if label == "face"][1::2]
    scripted_detectors(Detections.from_boxes(boxes, [0.9, 0.9], "face"))
    out = tmp_path / "report"
    code, output = _eval("--labels", str(dataset / "coco.json"), "--format", "coco", "--images",
                         str(dataset / "images"), "--run", "-o", str(out))  # fmt: skip
    assert code == 0, output
    face = _results(out)["labels"]["face"]
    assert face["recall"] == {"all": 0.3333, "<16": 0.0, "16-31": 0.5, "32-95": 0.0, "96+": 1.0}
    assert face["unmatched_per_image"] == 1.0
    assert len(list((out / "misses").glob("*.jpg"))) == 5

    # `veil detect`'s files score the same: eval finds each photo's file where detect writes it.
    dets = tmp_path / "dets"
    assert runner.invoke(app, ["detect", str(dataset / "images"), "-o", str(dets)]).exit_code == 0
    code, output = _eval("--labels", str(dataset / "coco.json"), "--format", "coco", "--images",
                         str(dataset / "images"), "--detections", str(dets), "-o",
                         str(tmp_path / "r2"))  # fmt: skip
    assert code == 0, output
    assert _results(tmp_path / "r2")["labels"] == _results(out)["labels"]


@pytest.mark.parametrize(
    ("labels", "fmt", "title", "face_row"),
    [
        ("video.zip", "cvat", "Recall on 30 video frames", r"face\s.*\b30\b.*\b25\b.*83\.3%"),
        ("mot.zip", "mot", "Recall on 30 video frames", r"face\s.*\b30\b.*\b25\b.*83\.3%"),
        ("mixed.zip", "cvat", "Recall on 2 photos and 30 video frames", r"face\s.*\b36\b.*\b29\b.*80\.6%"),
    ],
)
def test_video_labels_scored_frame_by_frame(
    dataset: Path, tmp_path: Path, labels: str, fmt: str, title: str, face_row: str
) -> None:
    """GIVEN a video's tracks as CVAT for video or MOT, or a CVAT for images file of the photos and the
    video's frames, and detections missing the face on 5 frames and every plate
    WHEN `veil eval --format cvat|mot` runs on the folder of photos and video
    THEN cvat reads either CVAT layout, the summary counts photos and video frames apart, and the report
    has a crop per missed box named by its frame."""
    out = tmp_path / "report"
    code, output = _eval("--labels", str(dataset / labels), "--format", fmt, "--images",
                         str(dataset / "images"), "--detections", str(dataset / "dets"), "-o",
                         str(out))  # fmt: skip
    assert code == 0, output
    assert title in output and re.search(face_row, output)
    misses = 18 if labels == "mixed.zip" else 15
    assert f"missed boxes: {misses}" in output
    page = (out / "index.html").read_text()
    assert len(re.findall(r'<img src="misses/', page)) == misses
    assert "<figcaption>clip.mp4 frame 7<br>face, 40 px high</figcaption>" in page


def test_run_on_a_video_scores_what_veil_detect_finds(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a scripted face detector finding the video's white square, and no plate detector result
    WHEN `veil eval --run` runs on the labelled video, and `veil eval --detections` on `veil detect`'s files
    THEN every face is found and every plate missed, the same both ways."""

    def load(name: str, config: DetectorConfig) -> FakeDetector:
        return FakeDetector(
            script=lambda _, frame: find_square(frame) if name == "face" else Detections.empty()
        )

    monkeypatch.setattr("veil.engine.anonymizer.load_detector", load)
    out = tmp_path / "report"
    code, output = _eval("--labels", str(dataset / "video.zip"), "--format", "cvat-video", "--images",
                         str(dataset / "images"), "--run", "-o", str(out))  # fmt: skip
    assert code == 0, output
    labels = _results(out)["labels"]
    assert labels["face"]["recall"]["all"] == 1.0 and labels["plate"]["recall"]["all"] == 0.0
    assert len(list((out / "misses").glob("*.jpg"))) == 10

    dets = tmp_path / "dets"
    assert runner.invoke(app, ["detect", str(dataset / "images"), "-o", str(dets)]).exit_code == 0
    code, output = _eval("--labels", str(dataset / "video.zip"), "--format", "cvat", "--images",
                         str(dataset / "images"), "--detections", str(dets), "-o",
                         str(tmp_path / "r2"))  # fmt: skip
    assert code == 0, output
    assert _results(tmp_path / "r2")["labels"] == labels


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels", "{d}/nothing.json", "--format", "coco", "--detections", "{d}/dets"],
         "no such labels file or folder"),
        (["--labels", "{d}/coco.json", "--format", "yolo", "--detections", "{d}/dets"],
         "no data.yaml in it"),
        (["--labels", "{d}/coco.json", "--format", "kitti", "--detections", "{d}/dets"],
         "no annotation format named 'kitti'; Veil knows"),
        (["--labels", "{d}/coco.json", "--format", "coco", "--run"], "--run needs the labelled photos"),
        (["--labels", "{d}/coco.json", "--format", "coco"], "give either --detections DIR or --run"),
        (["--labels", "{d}/coco.json", "--format", "coco", "--images", "{d}/nowhere", "--run"],
         "no such folder of images"),
        (["--labels", "{d}/two.zip", "--format", "cvat", "--images", "{d}/images", "--run"],
         "two.zip: folder 'other' names none of the videos (clip.mp4)"),
        (["--labels", "{d}/video.zip", "--format", "cvat-images", "--images", "{d}/images", "--run"],
         "annotations.xml is CVAT for video (tracks), not CVAT for images"),
    ],
)  # fmt: skip
def test_refusals_are_one_clear_line(dataset: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _eval(*(a.format(d=dataset) for a in args), "-o", str(tmp_path / "out"))
    assert code == 2
    assert message in " ".join(output.replace("│", " ").split())  # Rich wraps long lines in a box
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "index.html").exists()
