"""Every export read back by code that is not Veil's (the standard library's XML, JSON and CSV readers,
PyYAML): the items, boxes, frames and track ids each layout is documented to hold.

Datumaro (CVAT's dataset library) reads these exports too; it is not installed here because it pins
Pillow 12 (1.13.7) or OpenCV 4 (1.13.12) against this project's newer ones; bench/annotations_datumaro.py
runs it from an environment of its own.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.engine.annotations.reports import photo_report, video_report
from veil.engine.annotations import export_annotations
from veil.engine.report import Report

Row = tuple[str, int, str, tuple[float, float, float, float], int | None]
"""(item, frame, label, xyxy, track id): one box as a reader finds it."""

VIDEO = video_report(untracked=False)
PHOTO = photo_report()


def expected(with_photo: bool, tracks: bool, mot_ids: bool = False) -> list[Row]:
    rows: list[Row] = []
    for name, report in [("clip", VIDEO), *([("a", PHOTO)] if with_photo else [])]:
        for f in report.frames:
            d = f.detections
            for i in range(len(d)):
                track = int(d.track_id[i]) + (1 if mot_ids else 0) if tracks and d.track_id[i] >= 0 else None
                item = f"clip/frame_{f.index:06d}" if name == "clip" else "a"
                box = tuple(round(float(v), 2) for v in d.xyxy[i])
                rows.append((item, f.index, str(d.label[i]), box, track))  # type: ignore[arg-type]
    return sorted(rows, key=_order)


def coco(archive: zipfile.ZipFile) -> list[Row]:
    doc = json.loads(archive.read("annotations/instances_default.json"))
    labels = {c["id"]: c["name"] for c in doc["categories"]}
    images = {i["id"]: i["file_name"].rsplit(".", 1)[0] for i in doc["images"]}
    return [
        (
            images[a["image_id"]],
            _frame(images[a["image_id"]]),
            labels[a["category_id"]],
            _xywh(a["bbox"]),
            a["attributes"].get("track_id"),
        )
        for a in doc["annotations"]
    ]


def datumaro(archive: zipfile.ZipFile) -> list[Row]:
    doc = json.loads(archive.read("annotations/default.json"))
    labels = [label["name"] for label in doc["categories"]["label"]["labels"]]
    return [
        (
            item["id"],
            item["attr"]["frame"],
            labels[a["label_id"]],
            _xywh(a["bbox"]),
            a["attributes"].get("track_id"),
        )
        for item in doc["items"]
        for a in item["annotations"]
    ]


def cvat_images(archive: zipfile.ZipFile) -> list[Row]:
    root = ET.fromstring(archive.read("annotations.xml"))
    rows = []
    for image in root.iter("image"):
        item = image.get("name", "").rsplit(".", 1)[0]
        for box in image.iter("box"):
            track = {a.get("name"): a.text for a in box.iter("attribute")}.get("track_id")
            rows.append(
                (item, _frame(item), box.get("label", ""), _corners(box), int(track) if track else None)
            )
    return rows


def cvat_video(archive: zipfile.ZipFile) -> list[Row]:
    root = ET.fromstring(archive.read("annotations.xml"))
    rows = []
    for track in root.iter("track"):
        for box in track.iter("box"):
            if box.get("outside") == "0":
                frame = int(box.get("frame", ""))
                rows.append(
                    (
                        f"clip/frame_{frame:06d}",
                        frame,
                        track.get("label", ""),
                        _corners(box),
                        int(track.get("id", "")),
                    )
                )
    return rows


def voc(archive: zipfile.ZipFile) -> list[Row]:
    rows = []
    for name in archive.namelist():
        if name.startswith("Annotations/"):
            item = name.removeprefix("Annotations/").removesuffix(".xml")
            for obj in ET.fromstring(archive.read(name)).iter("object"):
                box = tuple(float(obj.findtext(f"bndbox/{k}", "")) for k in ("xmin", "ymin", "xmax", "ymax"))
                attributes = {a.findtext("name"): a.findtext("value") for a in obj.iter("attribute")}
                track = attributes.get("track_id")
                rows.append(
                    (item, _frame(item), obj.findtext("name", ""), box, int(track) if track else None)
                )  # type: ignore[arg-type]
    return rows


def mot(archive: zipfile.ZipFile) -> list[Row]:
    labels = archive.read("gt/labels.txt").decode().split()
    rows = []
    for r in csv.reader(io.StringIO(archive.read("gt/gt.txt").decode())):
        frame = int(r[0]) - 1
        rows.append((f"clip/frame_{frame:06d}", frame, labels[int(r[7]) - 1], _xywh(r[2:6]), int(r[1])))
    return rows


def yolo(archive: zipfile.ZipFile) -> list[Row]:
    names = yaml.safe_load(archive.read("data.yaml"))["names"]
    sizes = {"clip": VIDEO.media, "a": PHOTO.media}
    rows = []
    for name in archive.namelist():
        if name.startswith("labels/train/"):
            item = name.removeprefix("labels/train/").removesuffix(".txt").replace("__", "/")
            media = sizes[item.split("/")[0]]
            for line in archive.read(name).decode().splitlines():
                k, cx, cy, w, h = line.split()
                x, y = (float(cx) - float(w) / 2) * media.width, (float(cy) - float(h) / 2) * media.height
                box = (x, y, x + float(w) * media.width, y + float(h) * media.height)
                rows.append((item, _frame(item), names[int(k)], box, None))
    return rows


def _order(row: Row) -> tuple[object, ...]:
    return row[0], row[1], row[2], row[4] or -1, tuple(round(v, 1) for v in row[3])


def _frame(item: str) -> int:
    return int(item.rsplit("_", 1)[1]) if "frame_" in item else 0


def _xywh(bbox: list[float] | list[str]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in bbox)
    return x, y, x + w, y + h


def _corners(box: ET.Element) -> tuple[float, float, float, float]:
    return tuple(float(box.get(k, "")) for k in ("xtl", "ytl", "xbr", "ybr"))  # type: ignore[return-value]


READERS: list[tuple[str, Callable[[zipfile.ZipFile], list[Row]], bool, bool]] = [
    # format, reader, photos too, track ids kept
    ("COCO 1.0", coco, True, True),
    ("Datumaro 1.0", datumaro, True, True),
    ("CVAT for images 1.1", cvat_images, True, True),
    ("CVAT for video 1.1", cvat_video, False, True),
    ("PASCAL VOC 1.1", voc, True, True),
    ("MOT 1.1", mot, False, True),
    ("Ultralytics YOLO Detection 1.0", yolo, True, False),
]


@pytest.mark.parametrize(("name", "reader", "with_photo", "tracks"), READERS, ids=[r[0] for r in READERS])
def test_read_back_by_other_code(
    name: str, reader: Callable[[zipfile.ZipFile], list[Row]], with_photo: bool, tracks: bool, tmp_path: Path
) -> None:
    documents: list[tuple[str, Report]] = [("clip.mp4", VIDEO), *([("a.jpg", PHOTO)] if with_photo else [])]
    export_annotations(documents, name, tmp_path / "out.zip")
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        got = sorted(reader(archive), key=_order)
    want = expected(with_photo, tracks, mot_ids=name == "MOT 1.1")
    assert len(got) == len(want) == sum(len(f.detections) for f in VIDEO.frames) + (2 if with_photo else 0)
    assert [(r[0], r[1], r[2], r[4]) for r in got] == [(r[0], r[1], r[2], r[4]) for r in want]
    for g, w in zip(got, want, strict=True):
        assert g[3] == pytest.approx(w[3], abs=0.01), (g, w)
