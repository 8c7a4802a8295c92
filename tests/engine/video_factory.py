"""Small test videos made with PyAV: a white square moving over a smooth background, plus audio/subtitles.

Every clip is generated in the test's tmp_path; none is stored in the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from veil.engine.detections import Detections

__all__ = ["SQUARE", "Clip", "find_square", "make_audio_only", "make_video", "square_box"]

SQUARE = 40
"""Side of the moving square, pixels."""

_VFR_STEPS_MS = (40, 20, 60, 40, 33, 47)


@dataclass(frozen=True)
class Clip:
    """A generated video and what it holds.

    Attributes:
        path: the file.
        frame_count: video frames written.
        pts_ms: presentation time of each frame in milliseconds (time base 1/1000).
        audio_codec: codec of the audio stream, or None.
    """

    path: Path
    frame_count: int
    pts_ms: list[int]
    audio_codec: str | None


def square_box(index: int, width: int = 320, height: int = 240) -> tuple[float, float, float, float]:
    """Where the square is in upright frame `index`, xyxy pixels: it moves 4 px right per frame."""
    x = 20 + (4 * index) % (width - SQUARE - 40)
    y = height // 2 - SQUARE // 2
    return float(x), float(y), float(x + SQUARE), float(y + SQUARE)


def upright_frame(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """(H, W, 3) uint8 BGR: a smooth colour gradient with the white square at `square_box(index)`."""
    xs = np.linspace(0, 160, width, dtype=np.float32)
    ys = np.linspace(0, 120, height, dtype=np.float32)
    frame = np.stack(
        [np.add.outer(ys, xs * 0.2), np.add.outer(ys * 0.5, xs), np.add.outer(ys, xs * 0.5) * 0.6], axis=2
    ).astype(np.uint8)
    x1, y1, x2, y2 = (int(v) for v in square_box(index, width, height))
    frame[y1:y2, x1:x2] = 255
    return frame


def find_square(frame_bgr: np.ndarray) -> Detections:
    """What the fake face detector reports: the bounding box of near-white pixels, if any."""
    ys, xs = np.nonzero(frame_bgr.min(axis=2) > 220)
    if len(xs) < 100:
        return Detections.empty()
    box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    return Detections.from_boxes([box], [0.9], "face")


def make_video(
    path: Path,
    *,
    frames: int = 50,
    fps: int = 25,
    audio: str | None = "aac",
    vfr: bool = False,
    rotation: int = 0,
    subtitles: bool = False,
    codec: str = "libx264",
    gop: int | None = None,
) -> Clip:
    """Writes a 320x240 clip (upright size; coded 240x320 when `rotation` is 90 or 270).

    Args:
        path: output file; its extension picks the container.
        frames: video frames.
        fps: nominal rate; with `vfr` the frame durations cycle through 20-60 ms instead.
        audio: "aac", "libopus" or None: a mono sine track as long as the video.
        rotation: display rotation stored in the file, degrees counter-clockwise (PyAV's convention).
        subtitles: add a SubRip stream with two cues (Matroska only).
        codec: video encoder.
        gop: frames from one key frame to the next; None keeps the encoder's default (x264: 250).
    """
    pts_ms = _pts_ms(frames, fps, vfr)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        turns = rotation // 90
        video.width, video.height = (240, 320) if turns % 2 else (320, 240)
        video.pix_fmt = "yuv420p"
        if gop is not None:
            video.codec_context.gop_size = gop
        # AVI stores no timestamps, only a frame rate, so its clips count frames; the others use milliseconds.
        time_base = Fraction(1, fps) if path.suffix == ".avi" else Fraction(1, 1000)
        video.codec_context.time_base = video.time_base = time_base
        if path.suffix == ".avi":
            video.codec_context.max_b_frames = 0  # as Veil writes AVI: B-frames there scramble frame times
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream(audio, rate=48000, layout="mono") if audio else None
        subs = container.add_mux_stream("subrip") if subtitles else None
        for index, pts in enumerate(pts_ms):
            # The file stores the coded frame; players turn it by `rotation` to show the upright one.
            coded = np.ascontiguousarray(np.rot90(upright_frame(index), -turns))
            frame = av.VideoFrame.from_ndarray(coded, format="bgr24")
            frame.pts, frame.time_base = round(pts / 1000 / time_base), time_base
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            _write_audio(container, sound, (pts_ms[-1] + 40) / 1000)
        if subs is not None:
            _write_subtitles(container, subs)
    return Clip(path, frames, pts_ms, av.Codec(audio, "w").name if audio else None)


def make_audio_only(
    path: Path, container_format: str = "mp4", codec: str = "aac", cover: bool = False
) -> Path:
    """A file with one audio stream (1 s) and no video: by default an .m4a with AAC. With `cover`, it also
    holds a still cover picture (a JPEG stream marked as attached picture), as music files do."""
    with av.open(str(path), "w", format=container_format) as container:
        sound = container.add_stream(codec, rate=48000, layout="mono")
        if cover:
            picture = container.add_stream("mjpeg", rate=1)
            picture.width, picture.height, picture.pix_fmt = 64, 64, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
            still = av.VideoFrame.from_ndarray(upright_frame(0, 64, 64), format="bgr24")
            container.mux(picture.encode(still.reformat(format="yuvj420p")))
            container.mux(picture.encode())
        _write_audio(container, sound, 1.0)
    return path


def _pts_ms(frames: int, fps: int, vfr: bool) -> list[int]:
    if not vfr:
        return [round(i * 1000 / fps) for i in range(frames)]
    steps = [_VFR_STEPS_MS[i % len(_VFR_STEPS_MS)] for i in range(frames - 1)]
    return [0, *np.cumsum(steps).tolist()]


def _write_audio(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate = 48000
    samples = np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate).astype(np.float32) * 0.3
    chunk = stream.codec_context.frame_size or 960
    names = [f.name for f in stream.codec_context.codec.audio_formats or ()]
    fmt = next((f for f in ("fltp", "flt") if f in names), "s16")
    if fmt == "s16":
        samples = (samples * 32767).astype(np.int16)
    for start in range(0, len(samples), chunk):
        data = samples[None, start : start + chunk]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def _write_subtitles(container: av.container.OutputContainer, stream: av.stream.Stream) -> None:
    for start_ms, text in ((0, b"first cue"), (1000, b"second cue")):
        packet = av.Packet(text)
        packet.stream = stream
        packet.pts, packet.dts, packet.duration = start_ms, start_ms, 800
        packet.time_base = Fraction(1, 1000)
        container.mux(packet)
