"""The video pipeline end to end on generated clips, with a fake detector that finds the white square."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.engine.video_factory import SQUARE, Clip, find_square, make_audio_only, make_video, square_box
from tests.helpers import validate_report
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorInfo
from veil.engine.detectors.fake import FakeDetector
from veil.engine.errors import CorruptMediaError, MediaError, OutputError, VeilError
from veil.engine.redactors.style import DEFAULT_STYLES
from veil.engine.report import Report
from veil.engine.video import VideoOptions, anonymize_video


def square_detector() -> FakeDetector:
    return FakeDetector(script=lambda _call, frame: find_square(frame))


def run(src: Path, dst: Path | None, **options: Any) -> tuple[Report, FakeDetector]:
    detector = square_detector()
    report = anonymize_video(src, dst, [detector], DEFAULT_STYLES, VideoOptions(**options))
    return report, detector


def streams(path: Path) -> dict[str, Any]:
    """Codec, packet count and summed packet duration (seconds) per stream type, plus video frame data."""
    out: dict[str, Any] = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            packets = [p for p in container.demux(stream) if p.size]
            seconds = sum(float(p.duration * p.time_base) for p in packets if p.duration)
            out[stream.type] = (stream.codec_context.name, len(packets), round(seconds, 3))
            container.seek(0)
        frames = list(container.decode(video=0))
        out["times"] = [round(float(f.time), 4) for f in frames]
        out["rotation"] = frames[0].rotation
        out["rate"] = container.streams.video[0].average_rate
        out["format"] = container.format.name
    return out


def frames_bgr(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.mark.parametrize(
    ("name", "make_args"),
    [
        ("cfr.mp4", {}),
        ("vfr.mp4", {"vfr": True}),
        ("clip.mov", {}),
        ("subs.mkv", {"audio": "libopus", "subtitles": True}),
        ("clip.webm", {"audio": "libopus", "codec": "libvpx-vp9"}),
        ("clip.avi", {"audio": None}),
    ],
)
def test_output_keeps_container_frames_timing_and_streams(
    tmp_path: Path, name: str, make_args: dict[str, Any]
) -> None:
    """GIVEN a clip with audio (and subtitles in Matroska)
    WHEN it is anonymized with default options
    THEN the output has the same container, frame count, frame times, rate, and identical copied streams.
    """
    clip = make_video(tmp_path / name, **make_args)
    out = tmp_path / f"out-{name}"

    report, _ = run(clip.path, out)

    before, after = streams(clip.path), streams(out)
    assert after["format"] == before["format"]
    assert len(after["times"]) == clip.frame_count
    assert after["times"] == before["times"]
    for kind in ("audio", "subtitle"):
        assert after.get(kind) == before.get(kind)
    assert report.media.frame_count == clip.frame_count
    assert report.media.fps == pytest.approx(float(before["rate"]))
    assert report.media.duration == pytest.approx(before["times"][-1] - before["times"][0] + 0.04, abs=0.03)


def test_webm_gets_vp9_because_it_cannot_hold_h264(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.webm", audio=None, codec="libvpx-vp9")
    run(clip.path, tmp_path / "out.webm")
    assert streams(tmp_path / "out.webm")["video"][0] == "vp9"


def test_keep_audio_false_drops_audio_and_subtitles(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mkv", audio="libopus", subtitles=True)
    run(clip.path, tmp_path / "out.mkv", keep_audio=False)
    after = streams(tmp_path / "out.mkv")
    assert "audio" not in after and "subtitle" not in after


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_kept_and_boxes_are_upright(tmp_path: Path, rotation: int) -> None:
    """GIVEN a clip stored sideways with a display rotation
    WHEN anonymized
    THEN the output keeps the rotation, the detector saw upright frames, the report's boxes and size are
    upright, and the obscured pixels are where the square is in the coded frames.
    """
    clip = make_video(tmp_path / "in.mp4", rotation=rotation, audio=None)
    report, _ = run(clip.path, tmp_path / "out.mp4")

    assert streams(tmp_path / "out.mp4")["rotation"] == streams(clip.path)["rotation"]
    assert (report.media.width, report.media.height) == (320, 240)
    np.testing.assert_allclose(report.frames[10].detections.xyxy[0], square_box(10), atol=2)
    turns = rotation // 90
    upright_in = np.rot90(frames_bgr(clip.path)[10], turns)
    upright_out = np.rot90(frames_bgr(tmp_path / "out.mp4")[10], turns)
    x1, y1, x2, y2 = (int(v) for v in square_box(10))
    assert np.abs(upright_out[y1:y2, x1:x2].astype(int) - upright_in[y1:y2, x1:x2]).mean() > 20


def test_pixels_change_inside_boxes_only(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", audio=None)
    run(clip.path, tmp_path / "out.mp4", detect_every=3)
    plain = tmp_path / "plain.mp4"
    anonymize_video(clip.path, plain, [], DEFAULT_STYLES, VideoOptions())  # same encoder, nothing obscured

    for index, (got, ref) in enumerate(zip(frames_bgr(tmp_path / "out.mp4"), frames_bgr(plain), strict=True)):
        x1, y1, x2, y2 = (int(v) for v in square_box(index))
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5].mean() > 30, index  # the square's middle is blurred
        far = np.ones(diff.shape[1], bool)
        far[max(0, x1 - SQUARE) : x2 + SQUARE] = False
        # A square's width away: only encoder noise and the YUV-BGR-YUV round trip of obscured frames (~1).
        assert diff[:, far].mean() < 3, index


@pytest.mark.parametrize("stride", [1, 4, 7])
def test_report_has_detected_and_tracked_boxes_on_every_frame(tmp_path: Path, stride: int) -> None:
    """GIVEN a square moving 4 px per frame and detection every `stride` frames
    THEN key frames (every stride-th and the last) carry "detected" boxes, all others "tracked" boxes
    interpolated onto the square, all in one track.
    """
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=30)
    report, detector = run(clip.path, None, detect_every=stride)

    keys = {i for i in range(30) if i % stride == 0} | {29}
    assert detector.calls == len(keys)
    assert [f.index for f in report.frames] == list(range(30))
    for frame in report.frames:
        (source,) = set(frame.detections.source.tolist())
        assert source == ("detected" if frame.index in keys else "tracked")
        assert frame.time == pytest.approx(frame.index / 25)
        np.testing.assert_allclose(frame.detections.xyxy[0], square_box(frame.index), atol=2)
    assert {int(t) for f in report.frames for t in f.detections.track_id} == {0}
    (tmp_path / "report.json").write_text(report.to_json())
    document = validate_report(tmp_path / "report.json")
    assert document["frames"][1]["detections"][0]["source"] == ("detected" if 1 in keys else "tracked")


def test_missed_detections_stay_covered(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=20)
    misses = {5, 6, 7}
    detector = FakeDetector(
        script=lambda call, frame: Detections.empty() if call in misses else find_square(frame)
    )
    report = anonymize_video(clip.path, None, [detector], DEFAULT_STYLES, VideoOptions(detect_every=1))
    sources = {f.index: f.detections.source.tolist() for f in report.frames}
    assert [sources[i] for i in (5, 6, 7)] == [["tracked"]] * 3
    assert all(len(f.detections) == 1 for f in report.frames)


def test_draw_outlines_instead_of_blurring(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=5)
    run(clip.path, tmp_path / "out.mp4", draw=True)
    x1, y1, x2, y2 = (int(v) for v in square_box(2))
    middle = frames_bgr(tmp_path / "out.mp4")[2][y1 + 10 : y2 - 10, x1 + 10 : x2 - 10]
    assert middle.mean() > 230  # the square is still white inside its outline


def test_progress_counts_every_frame(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=12)
    calls: list[tuple[int, int | None]] = []
    progress = lambda done, total: calls.append((done, total))  # noqa: E731
    anonymize_video(clip.path, tmp_path / "o.mp4", [], DEFAULT_STYLES, VideoOptions(), progress)
    assert [done for done, _ in calls] == list(range(1, 13))
    assert {total for _, total in calls} == {12}


def corrupt(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"bad-{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x00\x01not a video at all" * 100)
    elif kind == "audio-only":
        make_audio_only(tmp_path / "sound.m4a").rename(path)
    else:  # truncated: half of a file, MP4 (index at the end) or Matroska (decodes up to the cut)
        clip = make_video(tmp_path / f"whole.{kind}", frames=100)
        path = tmp_path / f"cut.{kind}"
        path.write_bytes(clip.path.read_bytes()[: clip.path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("kind", ["empty", "garbage", "audio-only", "mp4", "mkv"])
def test_unusable_input_raises_corrupt_media_error(tmp_path: Path, kind: str) -> None:
    src = corrupt(kind, tmp_path)
    with pytest.raises(CorruptMediaError) as caught:
        run(src, tmp_path / "out.mp4")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    ("make_error", "error"),
    [
        (lambda tmp: (tmp / "missing.mp4", tmp / "o.mp4", {}), MediaError),
        (lambda tmp: (None, tmp / "no-dir" / "o.mp4", {}), OutputError),
        (lambda tmp: (None, tmp / "o.mp4", {"codec": "no-such-codec"}), OutputError),
        (lambda tmp: (None, tmp / "o.webm", {"codec": "libx265"}), OutputError),
    ],
)
def test_errors_are_veil_errors(
    tmp_path: Path,
    make_error: Callable[[Path], tuple[Path | None, Path, dict[str, Any]]],
    error: type[VeilError],
) -> None:
    src, dst, options = make_error(tmp_path)
    if src is None:
        src = make_video(tmp_path / f"in{dst.suffix}", audio=None, frames=3, codec="libvpx-vp9").path
    with pytest.raises(error):
        run(src, dst, **options)
    assert not dst.exists()


def test_failing_detector_stops_the_run_and_removes_the_output(tmp_path: Path) -> None:
    clip: Clip = make_video(tmp_path / "in.mp4", audio=None)

    def explode(call: int, frame: np.ndarray) -> Detections:
        raise VeilError("model broke")

    with pytest.raises(VeilError, match="model broke"):
        anonymize_video(clip.path, tmp_path / "o.mp4", [FakeDetector(script=explode)], DEFAULT_STYLES)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(("fps", "expected_calls"), [(25, 5), (10, 11)])
def test_default_stride_detects_about_every_0_3_seconds(
    tmp_path: Path, fps: int, expected_calls: int
) -> None:
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=30, fps=fps)
    _, detector = run(clip.path, None)
    assert detector.calls == expected_calls  # 25 fps: every 8th frame + the last; 10 fps: every 3rd


def test_stride_below_one_is_refused(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=3)
    with pytest.raises(ValueError, match="detect_every"):
        run(clip.path, None, detect_every=0)


def test_costly_label_runs_on_fewer_key_frames_and_stays_covered(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=30)
    face = square_detector()
    face.info = DetectorInfo("face", ("face",), "scripted", "veil", "MIT", "none")

    def plate_square(_call: int, frame: np.ndarray) -> Detections:
        found = find_square(frame)
        return Detections.from_boxes(found.xyxy, found.confidence, "plate")

    plate = FakeDetector(script=plate_square)
    plate.info = DetectorInfo("plate", ("plate",), "scripted", "veil", "MIT", "none")
    options = VideoOptions(detect_every=5, key_frames_by_label={"plate": 3})

    report = anonymize_video(clip.path, None, [face, plate], DEFAULT_STYLES, options)

    assert face.calls == 7  # key frames 0, 5, ..., 25 and the last, 29
    assert plate.calls == 3  # key frames number 0 and 3 (frames 0 and 15), and the last
    assert all(sorted(f.detections.label.tolist()) == ["face", "plate"] for f in report.frames)


def test_detectors_of_one_key_frame_run_side_by_side(tmp_path: Path) -> None:
    """GIVEN two detectors that each wait for the other inside detect WHEN a clip is processed THEN both
    finish: they run at the same time (one after the other, the barrier would time out)."""
    clip = make_video(tmp_path / "in.mp4", audio=None, frames=10)
    meeting = threading.Barrier(2, timeout=5)

    def waiting(label: str) -> FakeDetector:
        def script(_call: int, frame: np.ndarray) -> Detections:
            meeting.wait()
            found = find_square(frame)
            return Detections.from_boxes(found.xyxy, found.confidence, label)

        detector = FakeDetector(script=script)
        detector.info = DetectorInfo(label, (label,), "scripted", "veil", "MIT", "none")
        return detector

    face, plate = waiting("face"), waiting("plate")
    report = anonymize_video(clip.path, None, [face, plate], DEFAULT_STYLES, VideoOptions(detect_every=5))

    assert face.calls == plate.calls == 3
    assert all(sorted(f.detections.label.tolist()) == ["face", "plate"] for f in report.frames)
