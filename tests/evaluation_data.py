"""A tiny labelled set for `veil eval` tests: two noise photos with faces and a plate at known heights,
their labels written by hand as COCO and as Ultralytics YOLO, and detection files with known hits.

Faces (height px, found?): a.png 12 no, 20 yes, 40 yes, 130 yes; sub/b.jpg 24 no, 80 yes. Plate on a.png,
20 px, missed. One unmatched face detection on each photo. So face recall: all 4/6, <16 0/1, 16-31 1/2,
32-95 2/2, 96+ 1/1; plate 0/1; 1.0 unmatched face per photo; 3 misses.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import noise_image, save_image
from veil.engine.detections import Detections
from veil.engine.report import MediaInfo, Report

__all__ = ["DETECTED", "LABELLED", "SIZE_WH", "write_coco", "write_detections", "write_photos", "write_yolo"]

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


def write_detections(root: Path, detected: dict[str, list[tuple[str, Box, float]]] = DETECTED) -> Path:
    """`veil detect`'s files: `<root>/<name>.json`."""
    for name, boxes in detected.items():
        report = Report(MediaInfo("image", *SIZE_WH))
        report.add(0, 0.0, Detections.merge([Detections.from_boxes([b], [s], lab) for lab, b, s in boxes]))
        path = root / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.to_json())
    return root
