"""One video in segments: the plan, the joined video against a single run, and tracks across the cuts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.engine.video_factory import Clip, find_square, make_video, square_box
from veil.engine.detections import Detections
from veil.engine.detectors.fake import FakeDetector
from veil.engine.errors import OutputError
from veil.engine.media.cut import join_parts
from veil.engine.redactors.style import DEFAULT_STYLES
from veil.engine.report import FrameDetections, MediaInfo, Report
from veil.engine.segments import join_reports, join_segments, plan_segments
from veil.engine.video import FrameRange, VideoOptions, anonymize_video

# 60 frames at 25 fps (the square moves right without wrapping), a key frame every 6: cut every 12 frames.
FRAMES, GOP, MIN_SEGMENT_S = 60, 6, 0.4


def square_detector() -> FakeDetector:
    return FakeDetector(script=lambda _call, frame: find_square(frame))


def single_run(clip: Clip, dst: Path | None, options: VideoOptions) -> Report:
    return anonymize_video(clip.path, dst, [square_detector()], DEFAULT_STYLES, options)


def split_run(clip: Clip, dst: Path | None, options: VideoOptions) -> tuple[Report, tuple[FrameRange, ...]]:
    """Every segment on its own (as separate workers would run them), then the join."""
    segments = plan_segments(clip.path, MIN_SEGMENT_S, options)
    parts = [clip.path.with_name(f"part{n}{clip.path.suffix}") for n in range(len(segments))]
    detectors = [square_detector()]
    reports = [
        anonymize_video(clip.path, part if dst else None, detectors, DEFAULT_STYLES, options, None, segment)
        for segment, part in zip(segments, parts, strict=True)
    ]
    return join_segments(clip.path, dst, segments, parts, reports, options.keep_audio), segments


def packets(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """(pts, duration, bytes) of every packet per stream type; video frames' pts after decoding."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size and packet.stream.type != "video":
                out.setdefault(packet.stream.type, []).append((packet.pts, packet.duration, bytes(packet)))
    with av.open(str(path)) as container:
        out["video"] = [(frame.pts,) for frame in container.decode(video=0)]
        out["duration"] = [(container.duration, container.streams.video[0].duration)]
    return out


def frames_bgr(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def test_plan_cuts_at_key_frames_with_context_around_each_segment(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", frames=FRAMES, gop=GOP, audio=None)
    segments = plan_segments(clip.path, MIN_SEGMENT_S, VideoOptions(detect_every=3))

    written = [(s.write_start, s.write_stop) for s in segments]
    assert written == [(0, 12), (12, 24), (24, 36), (36, 48), (48, 60)]
    for segment in segments:
        assert segment.seek_index % GOP == 0 and segment.seek_index <= segment.start
        # Before: the 4 key frames (half a second at 25 fps) a missed face stays tracked over, and one
        # more; after: one stride.
        assert segment.start == max(0, segment.write_start - 15)
        assert segment.stop == min(FRAMES, segment.write_stop + 3)
        assert segment.seek_pts == clip.pts_ms[segment.seek_index] * 16  # mp4 keeps ms as 1/16000
        assert segment.origin_pts == 0
    assert plan_segments(clip.path, MIN_SEGMENT_S, VideoOptions(), min_video_s=2.5) == ()  # 2.4 s long


@pytest.mark.parametrize(
    ("name", "make_args", "min_segment_s"),
    [
        ("short.mp4", {"gop": GOP}, 1.3),  # 2.4 s cannot hold two segments of 1.3 s
        ("one-key.mp4", {}, MIN_SEGMENT_S),  # x264's default: one key frame in 60 frames
        ("clip.avi", {"gop": GOP}, MIN_SEGMENT_S),  # AVI keeps no frame times
    ],
)
def test_a_video_that_cannot_be_cut_has_no_plan(
    tmp_path: Path, name: str, make_args: dict[str, Any], min_segment_s: float
) -> None:
    clip = make_video(tmp_path / name, frames=FRAMES, audio=None, **make_args)
    assert plan_segments(clip.path, min_segment_s, VideoOptions()) == ()


@pytest.mark.parametrize(
    ("name", "make_args"),
    [
        ("cfr.mp4", {}),
        ("vfr.mp4", {"vfr": True}),
        ("turned.mov", {"rotation": 90}),
        ("subs.mkv", {"audio": "libopus", "subtitles": True}),
        ("clip.webm", {"audio": "libopus", "codec": "libvpx-vp9"}),
    ],
)
def test_joined_video_equals_a_single_run(tmp_path: Path, name: str, make_args: dict[str, Any]) -> None:
    """GIVEN a clip with audio (and subtitles) and a key frame every 6 frames
    WHEN it is anonymized in segments joined afterwards, and in a single run
    THEN both outputs have the same frames, frame times, duration and copied streams, and both reports
    the same frames, boxes, tracks and media figures.
    """
    clip = make_video(tmp_path / name, frames=FRAMES, gop=GOP, **make_args)
    options = VideoOptions(detect_every=4)
    whole, joined = tmp_path / f"whole-{name}", tmp_path / f"joined-{name}"

    expected = single_run(clip, whole, options)
    report, segments = split_run(clip, joined, options)

    assert len(segments) == 5
    assert packets(joined) == packets(whole)
    assert len(packets(joined)["video"]) == FRAMES
    assert report.media == expected.media
    assert report.to_dict() == expected.to_dict()


def test_a_face_crossing_every_cut_stays_obscured_in_one_track(tmp_path: Path) -> None:
    """GIVEN a square (the fake detector's face) moving right through every cut
    WHEN the clip is anonymized in segments
    THEN the square is blurred in every frame of the joined video, and the report holds one track."""
    clip = make_video(tmp_path / "in.mp4", frames=FRAMES, gop=GOP, audio=None)
    report, _ = split_run(clip, tmp_path / "out.mp4", VideoOptions())

    for index, (got, source) in enumerate(
        zip(frames_bgr(tmp_path / "out.mp4"), frames_bgr(clip.path), strict=True)
    ):
        x1, y1, x2, y2 = (int(v) for v in square_box(index))
        diff = np.abs(got.astype(int) - source.astype(int))[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5]
        assert diff.mean() > 30, index
    assert [frame.index for frame in report.frames] == list(range(FRAMES))
    assert {int(t) for frame in report.frames for t in frame.detections.track_id} == {0}
    assert report.counts_by_label() == {"face": 1}


def test_detection_only_joins_the_reports(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", frames=FRAMES, gop=GOP, audio=None)
    report, _ = split_run(clip, None, VideoOptions())
    assert report.to_dict() == single_run(clip, None, VideoOptions()).to_dict()
    assert not list(tmp_path.glob("part*"))


def test_audio_is_dropped_when_not_kept(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mkv", frames=FRAMES, gop=GOP, audio="libopus", subtitles=True)
    split_run(clip, tmp_path / "out.mkv", VideoOptions(keep_audio=False))
    assert set(packets(tmp_path / "out.mkv")) == {"video", "duration"}


def test_parts_encoded_differently_are_refused(tmp_path: Path) -> None:
    first = make_video(tmp_path / "a.mp4", frames=10, audio=None).path
    other = make_video(tmp_path / "b.mp4", frames=10, audio=None, codec="mpeg4").path
    with pytest.raises(OutputError, match="encoded differently"):
        join_parts(first, [first, other], tmp_path / "out.mp4", copy_streams=False)
    assert not (tmp_path / "out.mp4").exists()


def _faces(indices: range, tracks: dict[int, float]) -> Report:
    """A report with, on each frame, a 20x20 face per track id, at x = its start + the frame index."""
    frames = []
    for index in indices:
        xyxy = [[x + index, 0, x + index + 20, 20] for x in tracks.values()]
        detections = Detections(xyxy, np.full(len(tracks), 0.9), np.full(len(tracks), "face"), list(tracks))
        frames.append(FrameDetections(index, index / 25, detections))
    return Report(MediaInfo("video", 100, 100, 25.0, 5, 0.2 * (indices.stop > 7) + 0.2), frames)


@pytest.mark.parametrize(
    ("later_tracks", "ids_after_cut"),
    [
        ({3: 5.0}, [0]),  # the same face, numbered 3 by the second segment's tracker, keeps its id
        ({3: 5.0, 7: 60.0}, [0, 1]),  # ... and a face that only the second segment tracks gets a new one
        ({0: 70.0}, [1]),  # a face elsewhere is another face, whatever the tracker numbered it
    ],
)
def test_tracks_continue_across_a_cut_where_their_boxes_overlap(
    later_tracks: dict[int, float], ids_after_cut: list[int]
) -> None:
    """GIVEN two segments cut at frame 5, the first looking at frames 0-6, the second at 4-9
    THEN a track of the second continues one of the first when their boxes overlap on frames 4-6."""
    segments = (FrameRange(0, 0, 0, 7, 0, 5, 0), FrameRange(0, 0, 4, 10, 5, 10, 0))
    reports = [_faces(range(7), {0: 5.0}), _faces(range(4, 10), later_tracks)]

    joined = join_reports(segments, reports)

    assert [f.index for f in joined.frames] == list(range(10))
    ids = [sorted(f.detections.track_id.tolist()) for f in joined.frames]
    assert ids == [[0]] * 5 + [ids_after_cut] * 5
    assert (joined.media.frame_count, joined.media.duration) == (10, pytest.approx(0.4))


def test_a_segment_report_survives_its_json(tmp_path: Path) -> None:
    """Segment reports travel between workers as `veil.detections/1` documents."""
    clip = make_video(tmp_path / "in.mp4", frames=10, audio=None)
    report = single_run(clip, None, VideoOptions(detect_every=3))
    assert Report.from_dict(report.to_dict()).to_dict() == report.to_dict()
    with pytest.raises(ValueError, match=r"veil\.detections/1"):
        Report.from_dict({"schema": "other"})
