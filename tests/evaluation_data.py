"""A tiny labelled set for `veil eval` tests: two noise photos with faces and a plate at known heights,
their labels written by hand as COCO and as Ultralytics YOLO, and detection files with known hits.

Faces (height px, found?): a.png 12 no, 20 yes, 40 yes, 130 yes; sub/b.jpg 24 no, 80 yes. Plate on a.png,
20 px, missed. One unmatched face detection on each photo. So face recall: all 4/6, <16 0/1, 16-31 1/2,
32-95 2/2, 96+ 1/1; plate 0/1; 1.0 unmatched face per photo; 3 misses.

A video, clip.mp4: 30 frames at 25 fps, stored turned a quarter (upright 320x240), the white square of
`video_factory` labelled as face track 1 on every frame (40 px high) and a 20 px plate track 2 on frames
10-19 where nothing is drawn. Its detections find the square on every frame but 5-9, no plate, and one
false face on frame 3. So on its 30 frames: face 25/30, plate 0/10, 15 misses, 1 unmatched face.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.engine.video_factory import make_video, square_box
from tests.helpers import noise_image, save_image
from veil.engine.annotations import export_annotations
from veil.engine.detections import Detections
from veil.engine.report import MediaInfo, Report

__all__ = [
    "DETECTED",
    "FALSE_FACE_FRAME",
    "LABELLED",
    "MISSED_FACE_FRAMES",
    "PLATE_FRAMES",
    "SIZE_WH",
    "VIDEO",
    "VIDEO_FRAMES",
    "photo_labels",
    "video_detections",
    "video_labels",
    "write_coco",
    "write_detections",
    "write_labels",
    "write_photos",
    "write_video",
    "write_yolo",
]

SIZE_WH = (400, 300)
Box = tuple[float, float, float, float]
LABELLED: dict[str, list[tuple[str, Box]]] = {
    "a.png": [
        ("face", (10, 10, 22, 22)),
        ("face", (40, 10, 60, 30)),
        ("face", (80, 10, 110, 50)),
        ("face", (200, 100, 320, 230)),
        ("plate", (10, 200, 70, 220)),
    ],
    "sub/b.jpg": [("face", (10, 10, 30, 34)), ("face", (100, 100, 160, 180))],
}
DETECTED: dict[str, list[tuple[str, Box, float]]] = {
    "a.png": [
        ("face", (40, 10, 60, 30), 0.9),
        ("face", (82, 12, 112, 52), 0.8),
        ("face", (200, 100, 320, 230), 0.95),
        ("face", (300, 10, 340, 50), 0.6),
    ],
    "sub/b.jpg": [("face", (100, 100, 160, 180), 0.9), ("face", (300, 200, 350, 250), 0.7)],
}


def write_photos(root: Path) -> Path:
    for seed, name in enumerate(LABELLED):
        save_image(root / name, noise_image(*SIZE_WH, seed=seed))
    return root


def write_coco(path: Path) -> Path:
    images = [{"id": i, "file_name": name, "width": SIZE_WH[0], "height": SIZE_WH[1]}
              for i, name in enumerate(LABELLED, 1)]  # fmt: skip
    annotations = [
        {"id": len(images) * 10 + n, "image_id": i, "category_id": 1 if label == "face" else 2,
         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
        for i, name in enumerate(LABELLED, 1)
        for n, (label, (x0, y0, x1, y1)) in enumerate(LABELLED[name])
    ]  # fmt: skip
    categories = [{"id": 1, "name": "face"}, {"id": 2, "name": "plate"}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def write_yolo(root: Path) -> Path:
    """The Ultralytics layout as a folder: data.yaml and labels/train/<flat name>.txt."""
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nnames:\n  0: face\n  1: plate\n")
    width, height = SIZE_WH
    for name, boxes in LABELLED.items():
        lines = [
            f"{0 if label == 'face' else 1} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
            f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}\n"
            for label, (x0, y0, x1, y1) in boxes
        ]
        flat = name.rsplit(".", 1)[0].replace("/", "__")
        (root / "labels" / "train" / f"{flat}.txt").write_text("".join(lines))
    return root


def write_detections(
    root: Path, detected: dict[str, list[tuple[str, Box, float]]] = DETECTED, video: Report | None = None
) -> Path:
    """`veil detect`'s files: `<root>/<name>.json`, and `<root>/clip.mp4.json` when `video` is given."""
    if video is not None:
        (root / f"{VIDEO}.json").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{VIDEO}.json").write_text(video.to_json())
    for name, boxes in detected.items():
        report = Report(MediaInfo("image", *SIZE_WH))
        report.add(0, 0.0, Detections.merge([Detections.from_boxes([b], [s], lab) for lab, b, s in boxes]))
        path = root / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.to_json())
    return root


VIDEO = "clip.mp4"
VIDEO_FRAMES = 30
VIDEO_FPS = 25
PLATE_FRAMES = range(10, 20)
PLATE_BOX: Box = (200.0, 20.0, 260.0, 40.0)
MISSED_FACE_FRAMES = range(5, 10)
FALSE_FACE_FRAME = 3
FALSE_FACE: Box = (250.0, 180.0, 290.0, 220.0)


def write_video(root: Path) -> Path:
    """clip.mp4 under `root`, coded 240x320 and shown upright as 320x240."""
    root.mkdir(parents=True, exist_ok=True)
    return make_video(root / VIDEO, frames=VIDEO_FRAMES, fps=VIDEO_FPS, audio=None, rotation=90).path


def video_labels() -> Report:
    """The video's labels as a report (face track 1, plate track 2), for the exporter to write."""
    report = Report(MediaInfo("video", 320, 240, VIDEO_FPS, VIDEO_FRAMES, VIDEO_FRAMES / VIDEO_FPS))
    for index in range(VIDEO_FRAMES):
        rows = [("face", square_box(index), 1.0, 1)]
        if index in PLATE_FRAMES:
            rows.append(("plate", PLATE_BOX, 1.0, 2))
        report.add(index, index / VIDEO_FPS, _detections(rows))
    return report


def video_detections() -> Report:
    """What a detector found in the video: the square but on MISSED_FACE_FRAMES, a false face on frame 3."""
    report = Report(video_labels().media)
    for index in range(VIDEO_FRAMES):
        rows = [] if index in MISSED_FACE_FRAMES else [("face", square_box(index), 0.9, 1)]
        if index == FALSE_FACE_FRAME:
            rows.append(("face", FALSE_FACE, 0.6, 3))
        report.add(index, index / VIDEO_FPS, _detections(rows))
    return report


def photo_labels() -> dict[str, Report]:
    """LABELLED as reports, to export alongside the video's."""
    reports = {}
    for name, boxes in LABELLED.items():
        reports[name] = Report(MediaInfo("image", *SIZE_WH))
        reports[name].add(0, 0.0, _detections([(label, box, 1.0, -1) for label, box in boxes]))
    return reports


def write_labels(path: Path, documents: dict[str, Report], format_name: str) -> Path:
    """Labels as CVAT's exports hold them, written by Veil's exporter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    export_annotations(list(documents.items()), format_name, path)
    return path


def _detections(rows: list[tuple[str, Box, float, int]]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections(
        np.array([box for _, box, _, _ in rows], np.float32),
        np.array([score for _, _, score, _ in rows], np.float32),
        np.array([label for label, _, _, _ in rows]),
        np.array([track for _, _, _, track in rows], np.int64),
        np.full(len(rows), "detected"),
    )
