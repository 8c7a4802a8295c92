"""Scoring detections against labels (veil.engine.evaluation): recall by label and box height, unmatched
detections, misses, and the HTML report with its chart and one crop per miss."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.evaluation_data import (
    DETECTED,
    write_coco,
    write_detections,
    write_photos,
    write_yolo,
)
from veil.engine.detections import Detections
from veil.engine.errors import AnnotationContentError, AnnotationFileError, MediaError, SizeMismatchError
from veil.engine.evaluation import EvaluationRun, evaluate, score_reports, write_report
from veil.engine.evaluation.scoring import height_bucket
from veil.engine.report import MediaInfo, Report

EXPECTED_FACE = {"all": 0.6667, "<16": 0.0, "16-31": 0.5, "32-95": 1.0, "96+": 1.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    write_photos(root / "images")
    write_coco(root / "coco.json")
    write_yolo(root / "yolo")
    write_detections(root / "dets")
    return root


@pytest.fixture(scope="module")
def scored(dataset: Path) -> EvaluationRun:
    return evaluate(dataset / "coco.json", "COCO 1.0", images=dataset / "images", detections=dataset / "dets")


@pytest.mark.parametrize(
    ("height", "bucket"),
    [
        (0.5, "<16"),
        (15.9, "<16"),
        (16, "16-31"),
        (31.9, "16-31"),
        (32, "32-95"),
        (95.9, "32-95"),
        (96, "96+"),
    ],
)
def test_height_buckets(height: float, bucket: str) -> None:
    assert height_bucket(height) == bucket


def test_recall_by_label_and_height(scored: EvaluationRun) -> None:
    result = scored.evaluation.to_dict()
    face, plate = result["labels"]["face"], result["labels"]["plate"]
    assert face["recall"] == EXPECTED_FACE
    assert face["boxes"] == {"all": 6, "<16": 1, "16-31": 2, "32-95": 2, "96+": 1}
    assert plate["recall"] == {"all": 0.0, "16-31": 0.0}
    assert face["unmatched"] == 2 and face["unmatched_per_image"] == 1.0
    assert plate["unmatched"] == 0
    images = {image["image"]: image for image in result["images"]}
    assert images["a.png"] == {"image": "a.png", "boxes": 5, "found": 3, "detections": 4, "unmatched": 1,
                               "has_detections": True}  # fmt: skip
    misses = sorted((m["image"], m["label"], m["bucket"]) for m in result["misses"])
    assert misses == [("a.png", "face", "<16"), ("a.png", "plate", "16-31"), ("sub/b.jpg", "face", "16-31")]


def test_yolo_folder_reads_the_same_boxes(dataset: Path, scored: EvaluationRun) -> None:
    """The YOLO labels (a folder, fractions of the photo size) score exactly as the COCO ones."""
    run = evaluate(dataset / "yolo", "Ultralytics YOLO Detection 1.0", images=dataset / "images",
                   detections=dataset / "dets")  # fmt: skip
    assert run.evaluation.to_dict()["labels"] == scored.evaluation.to_dict()["labels"]


def test_without_images_the_detection_files_name_the_photos(dataset: Path, scored: EvaluationRun) -> None:
    run = evaluate(dataset / "coco.json", "COCO 1.0", detections=dataset / "dets")
    assert run.photos is None
    assert run.evaluation.to_dict()["labels"] == scored.evaluation.to_dict()["labels"]


def test_photo_without_detections_counts_as_nothing_found(dataset: Path, tmp_path: Path) -> None:
    dets = write_detections(tmp_path / "dets", {"a.png": DETECTED["a.png"]})
    run = evaluate(dataset / "coco.json", "COCO 1.0", images=dataset / "images", detections=dets)
    assert run.evaluation.without_detections == ["sub/b.jpg"]
    assert run.evaluation.tallies["face"].recall("all") == 3 / 6


def test_labels_without_detections_of_a_label_ignore_it() -> None:
    """Plates found on faces-only labels are counted apart, not as unmatched faces or plates."""
    truth = Report(MediaInfo("image", 100, 100))
    truth.add(0, 0.0, Detections.from_boxes([[10, 10, 50, 50]], [1.0], "face"))
    found = Report(MediaInfo("image", 100, 100))
    face = Detections.from_boxes([[10, 10, 50, 50]], [0.9], "face")
    found.add(0, 0.0, Detections.merge([face, Detections.from_boxes([[60, 60, 90, 70]], [0.9], "plate")]))
    evaluation = score_reports({"x.jpg": truth}, {"x.jpg": found})
    assert list(evaluation.tallies) == ["face"]
    assert evaluation.ignored == {"plate": 1}
    assert evaluation.tallies["face"].unmatched == 0


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ("no-boxes", AnnotationContentError, "the labels hold no box"),
        ("bad-json", AnnotationFileError, "not a veil.detections/1 document"),
        ("other-size", SizeMismatchError, "made for a 200x300 image, but the photo is 400x300"),
        ("no-photos", MediaError, "no photos in this folder"),
        ("missing-photo", AnnotationContentError, "names none of the media files"),
    ],
)
def test_refusals(dataset: Path, tmp_path: Path, change: str, error: type[Exception], message: str) -> None:
    labels, images, dets = dataset / "coco.json", dataset / "images", dataset / "dets"
    if change == "no-boxes":
        document = json.loads(labels.read_text())
        labels = tmp_path / "empty.json"
        labels.write_text(json.dumps({**document, "annotations": []}))
    elif change in ("bad-json", "other-size"):
        dets = write_detections(tmp_path / "dets")
        text = (
            "{"
            if change == "bad-json"
            else (dets / "a.png.json").read_text().replace('"width":400', '"width":200')
        )
        (dets / "a.png.json").write_text(text)
    elif change == "no-photos":
        images = tmp_path / "empty"
        images.mkdir()
    else:
        images = write_photos(tmp_path / "images")
        (images / "a.png").unlink()
    with pytest.raises(error, match=re.escape(message)):
        evaluate(labels, "COCO 1.0", images=images, detections=dets)


def test_report_has_the_chart_and_one_crop_per_miss(scored: EvaluationRun, tmp_path: Path) -> None:
    page = write_report(
        scored.evaluation, tmp_path / "report", {"labels": "coco.json"}, scored.photos, scored.found
    )
    text = page.read_text()
    assert "<svg" in text and "<script" not in text.casefold()
    assert re.findall(r"https?://[^\"' ]*", text) == ["http://www.w3.org/2000/svg"]  # nothing fetched
    crops = re.findall(r'<img src="(misses/\d+\.jpg)"', text)
    assert len(crops) == 3
    for crop in crops:
        data = (page.parent / crop).read_bytes()
        assert data[:3] == b"\xff\xd8\xff" and len(data) < 30_000
    assert json.loads((page.parent / "results.json").read_text())["labels"]["face"]["recall"] == EXPECTED_FACE


def test_report_caps_crops_and_still_lists_every_miss(scored: EvaluationRun, tmp_path: Path) -> None:
    write_report(scored.evaluation, tmp_path / "r", {}, scored.photos, scored.found)
    page = write_report(scored.evaluation, tmp_path / "r", {}, scored.photos, scored.found, max_crops=1)
    text = page.read_text()
    assert len(list((tmp_path / "r" / "misses").iterdir())) == 1  # the first run's crops are gone
    assert len(re.findall(r"<img ", text)) == 1
    assert "Crops of the first 1 misses only; all 3 are listed below" in text
    assert text.count("<td>sub/b.jpg</td><td>face</td>") == 1
