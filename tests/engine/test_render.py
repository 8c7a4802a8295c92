"""`render_file`: given boxes obscured in photos and videos, with no detection; everything else untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from tests.engine.video_factory import find_square, make_video, square_box
from tests.helpers import load_rgb, noise_image, save_image
from veil.engine.anonymizer import AnonymizeOptions, Anonymizer
from veil.engine.detections import Detections
from veil.engine.detectors.fake import FakeDetector
from veil.engine.errors import SizeMismatchError, UnsupportedMediaError
from veil.engine.render import render_file
from veil.engine.report import Report
from veil.engine.video import VideoOptions

BOX = (40.0, 30.0, 100.0, 90.0)
# Lossless H.264, so a frame with nothing to obscure decodes exactly as in a plain re-encode.
LOSSLESS = AnonymizeOptions(video=VideoOptions(crf=0))


def boxes(*xyxy: tuple[float, float, float, float], label: str = "face") -> Detections:
    return Detections.from_boxes(list(xyxy), [1.0] * len(xyxy), label)


def frames_bgr(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def stream_summary(path: Path) -> dict[str, Any]:
    """Frame times of the video, and codec and packet count of the audio."""
    with av.open(str(path)) as container:
        audio = container.streams.audio
        summary: dict[str, Any] = {
            "audio": (audio[0].codec_context.name, sum(1 for p in container.demux(audio[0]) if p.size))
            if audio
            else None
        }
        container.seek(0)
        summary["times"] = [round(float(f.time), 4) for f in container.decode(video=0)]
    return summary


def inside(array: np.ndarray, xyxy: tuple[float, ...], margin: int = 5) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in xyxy)
    return array[y1 + margin : y2 - margin, x1 + margin : x2 - margin]


# --- photos ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["face", "plate", "person"])
def test_a_photo_is_obscured_inside_the_box_only(tmp_path: Path, label: str) -> None:
    """GIVEN a noise photo and one box of any label
    WHEN it is rendered
    THEN the box is blurred, the pixels beyond its scaled mask are byte-identical, and the report lists it.
    """
    source = save_image(tmp_path / "in.png")
    report = render_file(source, tmp_path / "out.png", {0: boxes(BOX, label=label)})

    before, after = load_rgb(source), load_rgb(tmp_path / "out.png")
    assert inside(after, BOX).std() < inside(before, BOX).std() / 3
    assert np.array_equal(after[:, 120:], before[:, 120:])  # the mask grows at most 1.3x: x < 110
    assert np.array_equal(after[110:], before[110:])
    assert (report.media.type, report.media.width, report.media.height) == ("image", 200, 150)
    [frame] = report.frames
    assert frame.detections.label.tolist() == [label]
    np.testing.assert_array_equal(frame.detections.xyxy[0], BOX)


def test_a_photo_with_no_box_is_unchanged(tmp_path: Path) -> None:
    source = save_image(tmp_path / "in.png")
    report = render_file(source, tmp_path / "out.png", {})
    assert np.array_equal(load_rgb(tmp_path / "out.png"), load_rgb(source))
    assert report.frames == []


def test_photo_boxes_are_clipped_and_other_frames_ignored(tmp_path: Path) -> None:
    source = save_image(tmp_path / "in.png")
    given = {0: boxes((150.0, 100.0, 260.0, 200.0), (300.0, 300.0, 400.0, 400.0)), 3: boxes(BOX)}
    report = render_file(source, tmp_path / "out.png", given)
    [frame] = report.frames
    np.testing.assert_array_equal(frame.detections.xyxy, [[150, 100, 200, 150]])
    before, after = load_rgb(source), load_rgb(tmp_path / "out.png")
    assert np.array_equal(after[:, :100], before[:, :100])  # frame 3's box is not used on a photo


def test_draw_outlines_the_boxes(tmp_path: Path) -> None:
    source = save_image(tmp_path / "in.png", np.zeros((150, 200, 3), np.uint8))
    render_file(source, tmp_path / "out.png", {0: boxes(BOX)}, AnonymizeOptions(draw=True))
    after = load_rgb(tmp_path / "out.png")
    assert after[60, 40].any() and not after[60, 70].any()  # left edge drawn, middle untouched


@pytest.mark.parametrize("keep_metadata", [False, True])
def test_photo_metadata_follows_keep_metadata(tmp_path: Path, keep_metadata: bool) -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    source = save_image(tmp_path / "in.jpg", noise_image(), exif=exif.tobytes())
    render_file(source, tmp_path / "out.jpg", {0: boxes(BOX)}, AnonymizeOptions(keep_metadata=keep_metadata))
    with Image.open(tmp_path / "out.jpg") as out:
        assert (out.getexif().get(0x010F) == "CameraMaker") is keep_metadata


def test_a_photo_of_another_size_is_refused_and_nothing_written(tmp_path: Path) -> None:
    source = save_image(tmp_path / "in.png")
    with pytest.raises(SizeMismatchError, match="150x200"):
        render_file(source, tmp_path / "out.png", {0: boxes(BOX)}, size_wh=(150, 200))
    assert not (tmp_path / "out.png").exists()


def test_an_unsupported_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedMediaError):
        render_file(tmp_path / "notes.txt", tmp_path / "out.txt", {})


# --- videos ---------------------------------------------------------------------------------------------


def test_a_video_is_obscured_in_the_listed_frames_only(tmp_path: Path) -> None:
    """GIVEN a 12-frame clip with audio, and the square's box listed for frames 3 to 6 only
    WHEN it is rendered losslessly
    THEN those frames are blurred at the box and unchanged far from it, every other frame equals a plain
    re-encode, and the frame count, frame times and audio are kept.
    """
    clip = make_video(tmp_path / "in.mp4", frames=12)
    given = {index: boxes(square_box(index)) for index in range(3, 7)}
    report = render_file(clip.path, tmp_path / "out.mp4", given, LOSSLESS)
    render_file(clip.path, tmp_path / "plain.mp4", {}, LOSSLESS)

    got, plain = frames_bgr(tmp_path / "out.mp4"), frames_bgr(tmp_path / "plain.mp4")
    assert len(got) == len(plain) == clip.frame_count
    for index, (out, ref) in enumerate(zip(got, plain, strict=True)):
        diff = np.abs(out.astype(int) - ref.astype(int))
        if index in given:
            x1, _, x2, _ = (int(v) for v in square_box(index))
            assert inside(diff, square_box(index)).mean() > 30, index
            far = np.ones(diff.shape[1], bool)
            far[max(0, x1 - 40) : x2 + 40] = False
            assert diff[:, far].max() == 0, index
        else:
            assert diff.max() == 0, index
    assert stream_summary(tmp_path / "out.mp4") == stream_summary(clip.path)
    assert [frame.index for frame in report.frames] == [3, 4, 5, 6]
    assert (report.media.type, report.media.frame_count, report.media.width) == ("video", 12, 320)
    np.testing.assert_array_equal(report.frames[0].detections.xyxy[0], square_box(3))


def test_keep_audio_false_drops_the_audio(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", frames=6)
    options = AnonymizeOptions(video=VideoOptions(keep_audio=False))
    render_file(clip.path, tmp_path / "out.mp4", {0: boxes(square_box(0))}, options)
    assert stream_summary(tmp_path / "out.mp4")["audio"] is None


@pytest.mark.parametrize("rotation", [90, 270])
def test_video_boxes_are_upright(tmp_path: Path, rotation: int) -> None:
    """GIVEN a clip stored sideways and the square's box in the displayed (upright) frame
    WHEN rendered
    THEN the obscured pixels are at the square once the output is turned upright."""
    clip = make_video(tmp_path / "in.mp4", frames=4, audio=None, rotation=rotation)
    report = render_file(clip.path, tmp_path / "out.mp4", {2: boxes(square_box(2))}, LOSSLESS)

    turns = rotation // 90
    upright_in = np.rot90(frames_bgr(clip.path)[2], turns)
    upright_out = np.rot90(frames_bgr(tmp_path / "out.mp4")[2], turns)
    assert (
        np.abs(inside(upright_out, square_box(2)).astype(int) - inside(upright_in, square_box(2))).mean() > 20
    )
    assert (report.media.width, report.media.height) == (320, 240)


def test_frames_past_the_end_are_ignored(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", frames=4, audio=None)
    report = render_file(clip.path, tmp_path / "out.mp4", {1: boxes(square_box(1)), 40: boxes(BOX)})
    assert [frame.index for frame in report.frames] == [1]
    assert len(frames_bgr(tmp_path / "out.mp4")) == 4


def test_progress_counts_every_frame(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", frames=5, audio=None)
    calls: list[tuple[int, int | None]] = []
    render_file(clip.path, tmp_path / "out.mp4", {}, progress=lambda done, total: calls.append((done, total)))
    assert [done for done, _ in calls] == [1, 2, 3, 4, 5]


def test_a_video_of_another_size_is_refused_and_nothing_written(tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", frames=4, audio=None)
    with pytest.raises(SizeMismatchError, match="320x240"):
        render_file(clip.path, tmp_path / "out.mp4", {0: boxes(BOX)}, size_wh=(240, 320))
    assert not (tmp_path / "out.mp4").exists()


# --- a report rendered again ----------------------------------------------------------------------------


def _off_the_grid(call: int, frame: np.ndarray) -> Detections:
    """The square's box with its corners between the tenths of a pixel a report holds, by a fraction that
    changes with each call."""
    found = find_square(frame)
    shift = np.float32(0.0137 * (call % 7 + 1))
    return Detections(found.xyxy + shift, found.confidence, found.label, found.track_id, found.source)


def _written_and_read(report: Report) -> dict[int, Detections]:
    document = Report.from_dict(json.loads(report.to_json()))
    return {frame.index: frame.detections for frame in document.frames}


def test_rendering_a_videos_report_gives_back_its_anonymized_video(tmp_path: Path) -> None:
    """GIVEN a video anonymized with boxes whose corners fall between the tenths of a pixel its report holds
    WHEN the report, as written to JSON, is rendered on the same video
    THEN the output is the anonymized video, frame for frame (the pipeline obscured what it reported)."""
    clip = make_video(tmp_path / "in.mp4", frames=20, audio=None)
    anonymizer = Anonymizer([FakeDetector(script=_off_the_grid)])
    report = anonymizer.process_file(clip.path, tmp_path / "anonymized.mp4")

    render_file(clip.path, tmp_path / "rendered.mp4", _written_and_read(report))

    pairs = list(
        zip(frames_bgr(tmp_path / "rendered.mp4"), frames_bgr(tmp_path / "anonymized.mp4"), strict=True)
    )
    assert len(pairs) == 20 and len(report.frames) == 20
    assert all(np.array_equal(rendered, anonymized) for rendered, anonymized in pairs)


def test_rendering_a_photos_report_gives_back_its_anonymized_photo(tmp_path: Path) -> None:
    photo = save_image(tmp_path / "in.png", noise_image())
    box = Detections.from_boxes([(40.0137, 30.0461, 100.0372, 90.0549)], [0.91234], "face")
    report = Anonymizer([FakeDetector(box)]).process_file(photo, tmp_path / "anonymized.png")

    render_file(photo, tmp_path / "rendered.png", _written_and_read(report))

    assert np.array_equal(load_rgb(tmp_path / "rendered.png"), load_rgb(tmp_path / "anonymized.png"))
    assert not np.array_equal(load_rgb(tmp_path / "anonymized.png"), load_rgb(photo))
