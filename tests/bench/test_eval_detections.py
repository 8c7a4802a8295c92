"""The detection scorer counts hits, misses, ignored faces and unmatched boxes as documented."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HEADER = "dataset,image,img_w,img_h,x,y,w,h,label,extra\n"
WIDER_FLAGS = {
    "easy": "invalid=0;easy=1;medium=1;hard=1",
    "hard": "invalid=0;easy=0;medium=0;hard=1",
    "none": "invalid=0;easy=0;medium=0;hard=0",
    "invalid": "invalid=1;easy=0;medium=0;hard=0",
}


def _load_scorer() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "eval_detections.py"
    spec = importlib.util.spec_from_file_location("eval_detections", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


scorer = _load_scorer()


def _manifest(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text(HEADER + "".join(row + "\n" for row in rows))
    return path


def _face(image: str, xywh: tuple[int, int, int, int], flags: str) -> str:
    x, y, w, h = xywh
    return f"wider_dev,{image},200,200,{x},{y},{w},{h},face,{WIDER_FLAGS[flags]}"


def _write_detections(root: Path, image: str, boxes: list[tuple[str, list[float], float]]) -> None:
    detections = [
        {"label": lab, "score": s, "box": b, "track_id": None, "source": "detected"} for lab, b, s in boxes
    ]
    document: dict[str, Any] = {
        "schema": "veil.detections/1",
        "media": {"type": "image", "width": 200, "height": 200},
        "frames": [{"index": 0, "time": 0.0, "detections": detections}] if detections else [],
    }
    path = root / f"{image}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def test_recall_by_subset_and_unmatched(tmp_path: Path) -> None:
    """GIVEN an easy face found, a hard face missed, a no-subset face and an invalid face both detected,
    and one detection on background
    WHEN scored
    THEN easy recall is 1, hard 0.5, the ignored faces are neither hits nor unmatched, and one box is
    unmatched.
    """
    image = "faces/a.jpg"
    manifest = _manifest(
        tmp_path,
        [
            _face(image, (10, 10, 40, 40), "easy"),
            _face(image, (100, 10, 20, 20), "hard"),
            _face(image, (10, 100, 20, 20), "none"),
            _face(image, (100, 100, 10, 10), "invalid"),
        ],
    )
    dets = tmp_path / "dets"
    found = [
        ("face", [12.0, 12.0, 50.0, 50.0], 0.9),  # easy face, IoU ~0.9
        ("face", [10.0, 100.0, 30.0, 120.0], 0.8),  # face in no subset
        ("face", [100.0, 100.0, 110.0, 110.0], 0.7),  # invalid face
        ("face", [150.0, 150.0, 190.0, 190.0], 0.6),  # background
    ]
    _write_detections(dets, image, found)

    face = scorer.evaluate(manifest, dets)["wider_dev"]["face"]

    assert face["recall"] == {
        "all": round(2 / 3, 4),
        "easy": 1.0,
        "medium": 1.0,
        "hard": 0.5,
        "16-32": 0.5,
        "32-64": 1.0,
    }
    assert face["boxes"]["all"] == 3
    assert face["unmatched_per_image"] == 1.0
    assert face["duplicates_per_image"] == 0.0
    assert face["stray_per_image"] == 1.0


def test_iou_threshold_and_duplicates(tmp_path: Path) -> None:
    """A box at IoU 0.25 misses; of two boxes on one face the higher score claims it, the other duplicates."""
    image = "faces/b.jpg"
    manifest = _manifest(
        tmp_path, [_face(image, (0, 0, 100, 100), "easy"), _face(image, (150, 0, 40, 40), "easy")]
    )
    dets = tmp_path / "dets"
    found = [
        ("face", [0.0, 0.0, 100.0, 100.0], 0.5),
        ("face", [0.0, 0.0, 95.0, 95.0], 0.9),
        ("face", [150.0, 0.0, 170.0, 20.0], 0.9),  # IoU 0.25 with the second face
    ]
    _write_detections(dets, image, found)

    face = scorer.evaluate(manifest, dets)["wider_dev"]["face"]

    assert face["recall"]["all"] == 0.5
    assert face["unmatched_per_image"] == 1.0
    assert face["duplicates_per_image"] == 1.0
    assert face["stray_per_image"] == 0.0  # the IoU 0.25 box still overlaps a face at IoU >= 0.1


def test_missing_file_counts_as_no_detections(tmp_path: Path) -> None:
    manifest = _manifest(
        tmp_path, [_face("faces/c.jpg", (0, 0, 10, 10), "hard"), _face("faces/d.jpg", (0, 0, 80, 80), "easy")]
    )
    dets = tmp_path / "dets"
    _write_detections(dets, "faces/d.jpg", [("face", [0.0, 0.0, 80.0, 80.0], 0.9)])

    result = scorer.evaluate(manifest, dets)["wider_dev"]

    assert result["missing"] == 1
    assert result["missing_examples"] == ["faces/c.jpg"]
    assert result["face"]["recall"] == {
        "all": 0.5,
        "easy": 1.0,
        "medium": 1.0,
        "hard": 0.5,
        "<16": 0.0,
        "64+": 1.0,
    }
    assert scorer.evaluate(manifest, dets, present_only=True)["wider_dev"]["face"]["images"] == 1


def test_plates_ignore_other_labels(tmp_path: Path) -> None:
    """On the plate set only plates are scored: unlabelled faces would otherwise all count as unmatched."""
    image = "plates/e.jpg"
    manifest = _manifest(tmp_path, [f"openalpr_us,{image},200,200,50,50,60,20,plate,text=ABC123"])
    dets = tmp_path / "dets"
    _write_detections(
        dets, image, [("plate", [52.0, 50.0, 110.0, 70.0], 0.8), ("face", [0.0, 0.0, 30.0, 30.0], 0.9)]
    )

    plate = scorer.evaluate(manifest, dets, dataset="openalpr_us")["openalpr_us"]

    assert "face" not in plate
    assert plate["plate"]["recall"]["all"] == 1.0
    assert plate["plate"]["unmatched_per_image"] == 0.0


@pytest.mark.parametrize(
    ("height", "extra", "expected"),
    [
        (10, "invalid=0;easy=0;medium=1;hard=1", {"all", "medium", "hard", "<16"}),
        (16, "invalid=0;easy=0;medium=0;hard=0", {"all", "16-32"}),
        (64, "", {"all", "64+"}),
        (40, "invalid=1;easy=1;medium=1;hard=1", set()),
    ],
)
def test_box_groups(height: float, extra: str, expected: set[str]) -> None:
    assert scorer.box_groups(height, scorer.parse_extra(extra)) == expected
