"""Datasets with images: video frames decoded one at a time and written upright as JPEG (every
`frame_step`-th), photos copied as they are, in each format's image folder."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.engine.annotations.reports import photo_report
from tests.engine.video_factory import make_video, square_box
from tests.helpers import noise_image, save_image
from veil.engine.annotations import MediaFiles, export_annotations, import_annotations
from veil.engine.detections import Detections
from veil.engine.report import MediaInfo, Report

FRAMES = 12


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    make_video(folder / "clip.mp4", frames=FRAMES, audio=None, rotation=90)
    save_image(folder / "a.png", noise_image(200, 150))
    return {"clip.mp4": folder / "clip.mp4", "a.png": folder / "a.png"}


def square_report() -> Report:
    report = Report(MediaInfo("video", 320, 240, 25.0, FRAMES, FRAMES / 25))
    for index in range(FRAMES):
        report.add(index, index / 25, Detections.from_boxes([square_box(index)], [0.9], "face"))
    return report


@pytest.mark.parametrize(
    ("fmt", "frame_path"),
    [
        ("COCO 1.0", "images/default/clip/frame_{:06d}.jpg"),
        ("CVAT for video 1.1", "images/clip/frame_{:06d}.jpg"),
        ("MOT 1.1", "img1/{:06d}.jpg"),
        ("Ultralytics YOLO Detection 1.0", "images/train/clip__frame_{:06d}.jpg"),
    ],
)
def test_every_third_frame_written_upright_as_jpeg(
    fmt: str, frame_path: str, media: dict[str, Path], tmp_path: Path
) -> None:
    done: list[tuple[int, int]] = []
    target = tmp_path / "out.zip"
    export_annotations(
        [("clip.mp4", square_report())],
        fmt,
        target,
        MediaFiles(media),
        frame_step=3,
        progress=lambda *p: done.append(p),
    )
    with zipfile.ZipFile(target) as archive:
        images = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        numbers = [index + 1 if fmt == "MOT 1.1" else index for index in range(0, FRAMES, 3)]
        assert images == sorted(frame_path.format(n) for n in numbers)
        for index in range(0, FRAMES, 3):
            name = frame_path.format(index + 1 if fmt == "MOT 1.1" else index)
            bgr = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_COLOR)
            assert bgr.shape == (240, 320, 3)
            ys, xs = np.nonzero(bgr.min(axis=2) > 220)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx(square_box(index), abs=2)
    assert done == [(n, 4) for n in range(1, 5)]
    back = import_annotations(target, fmt, [("clip.mp4", square_report().media)])["clip.mp4"]
    assert [f.index for f in back.frames] == [0, 3, 6, 9]


def test_photos_are_copied_as_they_are(media: dict[str, Path], tmp_path: Path) -> None:
    export_annotations([("a.png", photo_report())], "PASCAL VOC 1.1", tmp_path / "voc.zip", MediaFiles(media))
    with zipfile.ZipFile(tmp_path / "voc.zip") as archive:
        assert archive.read("JPEGImages/a.png") == media["a.png"].read_bytes()
