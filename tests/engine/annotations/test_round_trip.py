"""Export, then import the file unchanged: the same frames, boxes within half a pixel, and the track ids,
scores and sources wherever the format has a place for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.annotations.reports import assert_same_boxes, photo_report, video_report
from veil.engine.annotations import export_annotations, formats, import_annotations

FORMATS = [f for f in formats() if f.can_export and f.can_import]
VIDEO_FORMATS = [f for f in FORMATS if "video" in f.media]
PHOTO_FORMATS = [f for f in FORMATS if "image" in f.media]


@pytest.mark.parametrize("info", VIDEO_FORMATS, ids=lambda f: f.name)
def test_video_round_trip(info, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = video_report(untracked=not info.tracks or info.name == "COCO 1.0")
    target = tmp_path / "out.zip"
    export_annotations([("clip.mp4", video)], info.name, target)
    back = import_annotations(target, info.name, [("clip.mp4", video.media)])["clip.mp4"]
    assert_same_boxes(back, video, tracks=info.tracks)
    assert back.media == video.media
    if info.scores:
        got = [
            (f.index, f.detections.confidence.round(4).tolist(), f.detections.source.tolist())
            for f in back.frames
        ]
        want = [
            (f.index, f.detections.confidence.round(4).tolist(), f.detections.source.tolist())
            for f in video.frames
        ]
        assert got == want


@pytest.mark.parametrize("info", PHOTO_FORMATS, ids=lambda f: f.name)
def test_photos_round_trip(info, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    photos = [
        ("a.jpg", photo_report()),
        ("sub/b.png", photo_report(64, 48, boxes=1)),
        ("c.jpg", photo_report(boxes=0)),
    ]
    target = tmp_path / "out.zip"
    export_annotations(photos, info.name, target)
    back = import_annotations(target, info.name, [(name, r.media) for name, r in photos])
    for name, report in photos:
        assert_same_boxes(back[name], report, tracks=info.tracks)
