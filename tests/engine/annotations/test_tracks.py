"""Track formats: gaps closed with outside boxes, boxes without a track as one-frame tracks, and key frames
read back as CVAT shows them (interpolated; a track with no outside box lasts to the end)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from tests.engine.annotations.reports import assert_same_boxes, video_report
from veil.engine.annotations import export_annotations, import_annotations
from veil.engine.report import MediaInfo

MEDIA = MediaInfo("video", 320, 240, 25.0, 40, 1.6)


def test_a_gap_is_closed_by_an_outside_box(tmp_path: Path) -> None:
    export_annotations(
        [("clip.mp4", video_report(untracked=False))], "CVAT for video 1.1", tmp_path / "v.zip"
    )
    with zipfile.ZipFile(tmp_path / "v.zip") as archive:
        root = ET.fromstring(archive.read("annotations.xml"))
    track = next(t for t in root.iter("track") if t.get("id") == "8")
    outside = [int(b.get("frame", "")) for b in track.iter("box") if b.get("outside") == "1"]
    assert outside == [10]  # leaves at 10, back at 15, and its last box is the video's last frame


@pytest.mark.parametrize(("fmt", "first_new_id"), [("CVAT for video 1.1", 10), ("MOT 1.1", 10)])
def test_boxes_without_a_track_come_back_as_one_frame_tracks(
    fmt: str, first_new_id: int, tmp_path: Path
) -> None:
    video = video_report()
    export_annotations([("clip.mp4", video)], fmt, tmp_path / "out.zip")
    back = import_annotations(tmp_path / "out.zip", fmt, [("clip.mp4", video.media)])["clip.mp4"]
    assert_same_boxes(back, video, tracks=False)
    plates = [
        int(t)
        for f in back.frames
        for t, box in zip(f.detections.track_id, f.detections.xyxy, strict=True)
        if box[0] == 200
    ]
    assert plates == list(range(first_new_id, first_new_id + 8))  # frames 0, 5, ..., 35, a track each


def test_cvat_key_frames_are_interpolated_and_last_to_the_end(tmp_path: Path) -> None:
    (tmp_path / "annotations.xml").write_text(
        '<annotations><track id="4" label="plate" source="manual">'
        '<box frame="30" outside="0" keyframe="1" xtl="0" ytl="0" xbr="10" ybr="10" z_order="0"/>'
        '<box frame="34" outside="0" keyframe="1" xtl="40" ytl="0" xbr="50" ybr="20" z_order="0"/>'
        "</track></annotations>"
    )
    report = import_annotations(tmp_path / "annotations.xml", "CVAT for video 1.1", [("clip.mp4", MEDIA)])[
        "clip.mp4"
    ]
    assert [f.index for f in report.frames] == list(range(30, 40))
    assert report.frames[2].detections.xyxy[0].tolist() == [20.0, 0.0, 30.0, 15.0]
    assert report.frames[-1].detections.xyxy[0].tolist() == [40.0, 0.0, 50.0, 20.0]
    assert set(report.frames[5].detections.track_id.tolist()) == {4}
    assert (report.frames[0].detections.confidence[0], report.frames[0].detections.source[0]) == (
        1.0,
        "detected",
    )


def test_several_videos_each_in_its_folder(tmp_path: Path) -> None:
    videos = [("cam1/a.mp4", video_report()), ("cam2/a.mov", video_report(frame_count=20, tracks=1))]
    media = [(name, r.media) for name, r in videos]
    for fmt in ("CVAT for video 1.1", "MOT 1.1"):
        export_annotations(videos, fmt, tmp_path / "out.zip")
        with zipfile.ZipFile(tmp_path / "out.zip") as archive:
            assert {n for n in archive.namelist() if n.endswith((".xml", "gt.txt"))} == (
                {"cam1/a/annotations.xml", "cam2/a/annotations.xml"}
                if fmt.startswith("CVAT")
                else {"cam1/a/gt/gt.txt", "cam2/a/gt/gt.txt"}
            )
        back = import_annotations(tmp_path / "out.zip", fmt, media)
        for name, report in videos:
            assert_same_boxes(back[name], report, tracks=False)
