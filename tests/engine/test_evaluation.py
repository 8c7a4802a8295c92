"""Scoring detections against labels (veil.engine.evaluation): recall by label and box height, unmatched
detections, misses, and the HTML report with its chart and one crop per miss; on photos and on the frames
of a generated video labelled as CVAT for video or MOT."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.engine.video_factory import find_square
from tests.evaluation_data import (
    DETECTED,
    MISSED_FACE_FRAMES,
    PLATE_FRAMES,
    VIDEO,
    VIDEO_FRAMES,
    video_detections,
    video_labels,
    write_coco,
    write_detections,
    write_labels,
    write_photos,
    write_video,
    write_yolo,
)
from veil.engine.anonymizer import Anonymizer
from veil.engine.detections import Detections
from veil.engine.detectors.fake import FakeDetector
from veil.engine.errors import AnnotationContentError, AnnotationFileError, MediaError, SizeMismatchError
from veil.engine.evaluation import CVAT_XML, EvaluationRun, evaluate, html_report, score_reports, write_report
from veil.engine.evaluation.scoring import height_bucket
from veil.engine.report import MediaInfo, Report

EXPECTED_FACE = {"all": 0.6667, "<16": 0.0, "16-31": 0.5, "32-95": 1.0, "96+": 1.0}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval")
    write_photos(root / "images")
    write_video(root / "images")
    write_coco(root / "coco.json")
    write_yolo(root / "yolo")
    write_detections(root / "dets", video=video_detections())
    write_labels(root / "video.zip", {VIDEO: video_labels()}, "CVAT for video 1.1")
    write_labels(root / "mot.zip", {VIDEO: video_labels()}, "MOT 1.1")
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
    assert images["a.png"] == {"image": "a.png", "frame": None, "boxes": 5, "found": 3, "detections": 4,
                               "unmatched": 1, "has_detections": True}  # fmt: skip
    assert (result["photos"], result["video_frames"]) == (2, 0)  # the video beside them has no labels
    misses = sorted((m["image"], m["label"], m["bucket"]) for m in result["misses"])
    assert misses == [("a.png", "face", "<16"), ("a.png", "plate", "16-31"), ("sub/b.jpg", "face", "16-31")]


def test_yolo_folder_reads_the_same_boxes(dataset: Path, scored: EvaluationRun) -> None:
    """The YOLO labels (a folder, fractions of the photo size) score exactly as the COCO ones."""
    run = evaluate(dataset / "yolo", "Ultralytics YOLO Detection 1.0", images=dataset / "images",
                   detections=dataset / "dets")  # fmt: skip
    assert run.evaluation.to_dict()["labels"] == scored.evaluation.to_dict()["labels"]


def test_without_images_the_detection_files_name_the_photos(dataset: Path, scored: EvaluationRun) -> None:
    run = evaluate(dataset / "coco.json", "COCO 1.0", detections=dataset / "dets")
    assert run.media is None
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
        ("other-size", SizeMismatchError, "made for a 200x300 photo, but the photo is 400x300"),
        ("no-photos", MediaError, "no photos or videos in this folder"),
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
        scored.evaluation, tmp_path / "report", {"labels": "coco.json"}, scored.media, scored.found
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
    write_report(scored.evaluation, tmp_path / "r", {}, scored.media, scored.found)
    page = write_report(scored.evaluation, tmp_path / "r", {}, scored.media, scored.found, max_crops=1)
    text = page.read_text()
    assert len(list((tmp_path / "r" / "misses").iterdir())) == 1  # the first run's crops are gone
    assert len(re.findall(r"<img ", text)) == 1
    assert "Crops of the first 1 misses only; all 3 are listed below" in text
    assert text.count("<td>sub/b.jpg</td><td>face</td>") == 1


VIDEO_MISSES = sorted(
    [(VIDEO, frame, "face") for frame in MISSED_FACE_FRAMES]
    + [(VIDEO, frame, "plate") for frame in PLATE_FRAMES]
)


@pytest.fixture(scope="module")
def video_scored(dataset: Path) -> EvaluationRun:
    return evaluate(dataset / "video.zip", CVAT_XML, images=dataset / "images", detections=dataset / "dets")


@pytest.mark.parametrize(
    ("labels", "fmt"), [("video.zip", CVAT_XML), ("video.zip", "CVAT for video 1.1"), ("mot.zip", "MOT 1.1")]
)
def test_video_frames_are_scored_like_photos(dataset: Path, labels: str, fmt: str) -> None:
    """GIVEN a rotated video beside two photos, its tracks exported as CVAT for video or MOT, and
    detections missing the face on frames 5-9, every plate, with a false face on frame 3
    WHEN it is evaluated
    THEN its 30 labelled frames are scored each like a photo (the photos, unlabelled, are left out), and
    the misses are exactly the boxes left out."""
    run = evaluate(dataset / labels, fmt, images=dataset / "images", detections=dataset / "dets")
    result = run.evaluation.to_dict()
    assert (result["photos"], result["video_frames"]) == (0, VIDEO_FRAMES)
    assert run.evaluation.counted == "30 video frames"
    face, plate = result["labels"]["face"], result["labels"]["plate"]
    assert face["recall"] == {"all": 0.8333, "32-95": 0.8333} and face["found"] == {"all": 25, "32-95": 25}
    assert plate["recall"] == {"all": 0.0, "16-31": 0.0} and plate["boxes"] == {"all": 10, "16-31": 10}
    assert face["unmatched"] == 1 and face["unmatched_per_image"] == round(1 / 30, 3)
    assert sorted((m["image"], m["frame"], m["label"]) for m in result["misses"]) == VIDEO_MISSES
    false_alarm = next(i for i in run.evaluation.images if i.unmatched)
    assert (false_alarm.where, false_alarm.detections, false_alarm.found) == ("clip.mp4 frame 3", 2, 1)


def test_report_has_a_crop_of_each_missed_video_box(
    video_scored: EvaluationRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each miss is cropped from its own frame (the square's place moves 4 px a frame), upright, and the
    video is decoded once for all of them."""
    passes: list[list[int]] = []
    decode = html_report.upright_frames

    def recording(path: Path, frames: list[int]) -> object:
        passes.append(list(frames))
        return decode(path, frames)

    monkeypatch.setattr(html_report, "upright_frames", recording)
    page = write_report(video_scored.evaluation, tmp_path / "r", {}, video_scored.media, video_scored.found)
    monkeypatch.undo()
    assert passes == [[*MISSED_FACE_FRAMES, *PLATE_FRAMES]]
    text = page.read_text()
    figures = re.findall(r'<img src="(misses/\d+\.jpg)" alt="missed (\w+)"><figcaption>([^<]+)<br>', text)
    assert len(figures) == len(VIDEO_MISSES)
    assert {caption for _, _, caption in figures} == {f"{VIDEO} frame {f}" for _, f, _ in VIDEO_MISSES}
    for crop, label, _ in figures:
        image = cv2.imdecode(np.frombuffer((page.parent / crop).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        square = find_square(image)
        if label == "plate":  # nothing is drawn where the plate is labelled
            assert not len(square)
            continue
        x0, y0, x1, y1 = square.xyxy[0].tolist()
        assert abs((x0 + x1) / 2 - 80) <= 3 and abs((y0 + y1) / 2 - 80) <= 3  # centred: the right frame


def test_run_scores_the_video_pipeline(dataset: Path) -> None:
    """--run on a video: the detector sees key frames only, the tracker moves its boxes between them, and
    progress counts the video's frames."""
    detector = FakeDetector(script=lambda _, frame: find_square(frame))
    calls: list[tuple[int, int]] = []
    run = evaluate(
        dataset / "video.zip",
        CVAT_XML,
        images=dataset / "images",
        anonymizer=Anonymizer([detector]),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert 0 < detector.calls < VIDEO_FRAMES  # key frames only; the photos are not run
    labels = run.evaluation.to_dict()["labels"]
    assert labels["face"]["recall"]["all"] == 1.0 and labels["face"]["unmatched"] == 0
    assert labels["plate"]["recall"]["all"] == 0.0
    assert calls[-1] == (VIDEO_FRAMES, VIDEO_FRAMES) and calls == sorted(calls)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            "other-video",
            AnnotationContentError,
            "two.zip: folder 'other' names none of the videos (clip.mp4)",
        ),
        ("other-size", SizeMismatchError, "made for a 240x320 video, but the video is 320x240"),
        ("photo-file", SizeMismatchError, "made for a 320x240 photo, but the video is 320x240"),
    ],
)
def test_video_refusals(
    dataset: Path, tmp_path: Path, change: str, error: type[Exception], message: str
) -> None:
    labels, dets = dataset / "video.zip", dataset / "dets"
    if change == "other-video":
        labels = write_labels(tmp_path / "two.zip", {VIDEO: video_labels(), "other.mp4": video_labels()},
                              "CVAT for video 1.1")  # fmt: skip
    else:
        report = video_detections()
        if change == "other-size":
            report.media = MediaInfo("video", 240, 320, 25.0, VIDEO_FRAMES)
        else:
            report.media = MediaInfo("image", 320, 240)
        dets = write_detections(tmp_path / "dets", {}, video=report)
    with pytest.raises(error, match=re.escape(message)):
        evaluate(labels, CVAT_XML, images=dataset / "images", detections=dets)


def test_a_frame_with_no_label_is_not_scored() -> None:
    """Detections on video frames nobody labelled count nowhere; a labelled frame without any counts."""
    truth, found = Report(video_labels().media), Report(video_labels().media)
    truth.add(4, 0.16, Detections.from_boxes([[10, 10, 50, 50]], [1.0], "face"))
    found.add(2, 0.08, Detections.from_boxes([[10, 10, 50, 50]], [0.9], "face"))
    evaluation = score_reports({VIDEO: truth}, {VIDEO: found})
    assert [(i.where, i.boxes, i.found, i.unmatched) for i in evaluation.images] == [
        ("clip.mp4 frame 4", 1, 0, 0)
    ]
    assert evaluation.tallies["face"].detections == 0


def test_the_unmatched_table_lists_the_worst_images_and_results_json_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long video has a row per frame; the page keeps the ones with the most unmatched detections."""
    monkeypatch.setattr(html_report, "MAX_TABLE_ROWS", 2)
    truth, found = {}, {}
    for number, strays in enumerate([1, 3, 2]):
        name = f"p{number}.jpg"
        truth[name] = Report(MediaInfo("image", 200, 200))
        truth[name].add(0, 0.0, Detections.from_boxes([(10, 10, 40, 40)], [1.0], "face"))
        found[name] = Report(MediaInfo("image", 200, 200))
        boxes = [(10, 10, 40, 40)] + [(100 + 20 * i, 100, 115 + 20 * i, 115) for i in range(strays)]
        found[name].add(0, 0.0, Detections.from_boxes(boxes, [0.9] * len(boxes), "face"))

    page = write_report(score_reports(truth, found), tmp_path / "r", {})

    text = page.read_text()
    assert re.findall(r"<tr><td>(p\d\.jpg)</td><td>(\d)</td>", text) == [("p1.jpg", "3"), ("p2.jpg", "2")]
    assert "3 photos or video frames have detections" in text
    assert "The 2 with the most are listed; results.json has them all." in text
    results = json.loads((page.parent / "results.json").read_text())
    assert sorted(image["unmatched"] for image in results["images"]) == [1, 2, 3]
