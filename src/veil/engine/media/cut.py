"""Cutting a video at key frames and joining encoded parts, on packets only: nothing is decoded.

`scan_key_frames` reads where the first video stream's key frames are, to plan segments. `join_parts`
concatenates the separately encoded segments of one video stream into one file, with the source's audio
and subtitle streams copied beside it, as `VideoWriter` writes them in a single run.

A part written by `VideoWriter` keeps its frames' pts and starts with a key frame (an encoder's first frame
always is one), so its packets follow the previous part's as they are. Only decode times may need a touch:
Matroska stores none (the demuxer leaves the first ones of each part unset) and, where frame durations vary,
a part's first decode times can fall before the previous part's last ones.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from veil.engine.errors import CorruptMediaError, OutputError
from veil.engine.media.video import Packet, muxer_for

__all__ = ["KeyFrames", "join_parts", "scan_key_frames"]

# Containers where every frame carries its own presentation time, so a part decoded from a key frame on
# knows where its frames belong. AVI stores no times and MPEG streams wrap theirs: such files run whole.
_CUTTABLE_MUXERS = frozenset({"mp4", "mov", "3gp", "matroska", "webm"})


@dataclass(frozen=True)
class KeyFrames:
    """The first video stream's frames as its packets tell, without decoding; pts in `time_base` ticks.

    Attributes:
        frame_count: frames in the stream (packets with data).
        key_indices: presentation index (from 0) of each key frame, ascending.
        key_pts: pts of each key frame, in the same order.
        origin_pts: pts of frame 0.
        end_pts: pts just after the last frame (its pts plus its duration).
        time_base: seconds per tick.
        frame_rate: average frames per second, None where the container does not say.
    """

    frame_count: int
    key_indices: tuple[int, ...]
    key_pts: tuple[int, ...]
    origin_pts: int
    end_pts: int
    time_base: Fraction
    frame_rate: Fraction | None

    def seconds(self, pts: int) -> float:
        """Seconds from frame 0 to `pts`."""
        return float((pts - self.origin_pts) * self.time_base)


def scan_key_frames(src: Path) -> KeyFrames | None:
    """Where the key frames of `src`'s first video stream are; None when it cannot be cut: a container
    type without a time per frame (see above), or a frame without pts or sharing one.

    Raises:
        CorruptMediaError: `src` cannot be read or has no video stream.
    """
    try:
        with av.open(str(src), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise CorruptMediaError(f"{src.name}: no video stream")
            if muxer_for(src, container.format.name) not in _CUTTABLE_MUXERS:
                return None
            video = container.streams.video[0]
            packets = [(p.pts, p.duration or 0, p.is_keyframe) for p in container.demux(video) if p.size]
            time_base = video.time_base or Fraction(1, 90000)
            frame_rate = video.average_rate or video.guessed_rate
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{src.name}: not a readable video ({exc})") from exc
    return _key_frames(packets, time_base, frame_rate)


def _key_frames(
    packets: list[tuple[int | None, int, bool]], time_base: Fraction, frame_rate: Fraction | None
) -> KeyFrames | None:
    """Numbers key frames by their place among all pts (packets come in decode order)."""
    all_pts = sorted(pts for pts, _, _ in packets if pts is not None)
    if not all_pts or len(all_pts) < len(packets) or len(set(all_pts)) < len(all_pts):
        return None
    keys = sorted(pts for pts, _, key in packets if key and pts is not None)
    last_pts, last_duration = max((pts, duration) for pts, duration, _ in packets if pts is not None)
    return KeyFrames(
        frame_count=len(all_pts),
        key_indices=tuple(bisect.bisect_left(all_pts, pts) for pts in keys),
        key_pts=tuple(keys),
        origin_pts=all_pts[0],
        end_pts=last_pts + last_duration,
        time_base=time_base,
        frame_rate=frame_rate,
    )


def join_parts(src: Path, parts: Sequence[Path], dst: Path, copy_streams: bool) -> None:
    """Writes the video packets of `parts`, in order, into `dst` (the container type of the parts), with
    the audio and subtitle streams of `src` copied unchanged when `copy_streams`; `dst` is removed on
    failure.

    Raises:
        OutputError: the parts were encoded differently, their times do not follow each other, or `dst`
            cannot be written.
        CorruptMediaError: a part or `src` cannot be read.
    """
    try:
        _join(src, parts, dst, copy_streams)
    except av.FFmpegError as exc:
        dst.unlink(missing_ok=True)
        raise OutputError(f"cannot join the segments of {dst.name}: {exc}") from exc
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


def _join(src: Path, parts: Sequence[Path], dst: Path, copy_streams: bool) -> None:
    inputs = [_open(part) for part in parts]
    source = _open(src)
    try:
        first = inputs[0].streams.video[0]
        _check_alike(first, [part.streams.video[0] for part in inputs[1:]], dst)
        copied = [s for s in source.streams if s.type in ("audio", "subtitle")] if copy_streams else []
        with av.open(str(dst), "w", format=muxer_for(parts[0], inputs[0].format.name)) as out:
            video = out.add_stream_from_template(first)
            video.time_base = first.time_base
            streams = {s.index: out.add_stream_from_template(s) for s in copied}
            others = (p for p in source.demux(copied) if p.dts is not None) if copied else iter(())
            for packet in heapq.merge(_video_packets(inputs), others, key=_decode_seconds):
                packet.stream = video if packet.stream.type == "video" else streams[packet.stream.index]
                out.mux(packet)
    finally:
        for container in [*inputs, source]:
            container.close()


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{path.name}: not a readable video ({exc})") from exc


def _check_alike(first: av.VideoStream, others: Sequence[av.VideoStream], dst: Path) -> None:
    """One stream can only hold parts of one codec, size and set of parameters (SPS/PPS)."""
    expected = _signature(first)
    if any(_signature(other) != expected for other in others):
        raise OutputError(f"cannot join the segments of {dst.name}: they were encoded differently")


def _signature(stream: av.VideoStream) -> tuple[object, ...]:
    context = stream.codec_context
    return (context.name, context.width, context.height, stream.time_base, bytes(context.extradata or b""))


def _video_packets(parts: Sequence[av.container.InputContainer]) -> Iterator[Packet]:
    """The parts' video packets with strictly increasing decode times, never after their presentation."""
    last_dts: int | None = None
    for part in parts:
        for packet in _with_dts(p for p in part.demux(part.streams.video[0]) if p.size):
            assert packet.dts is not None and packet.pts is not None  # _with_dts sets every dts
            if last_dts is not None and packet.dts <= last_dts:
                packet.dts = last_dts + 1
            if packet.dts > packet.pts:
                raise OutputError("the segments' frame times overlap; they cannot be joined")
            last_dts = packet.dts
            yield packet


def _with_dts(packets: Iterator[Packet]) -> Iterator[Packet]:
    """Gives every packet a decode time: the leading ones a Matroska demuxer leaves unset one tick each
    before the first known one (they are the part's first pictures, in decode order), a later unset one a
    tick after the one before."""
    leading: list[Packet] = []
    previous: int | None = None
    for packet in packets:
        if packet.pts is None:
            raise OutputError("a segment has a frame without a time; it cannot be joined")
        if packet.dts is None:
            if previous is None:
                leading.append(packet)
                continue
            packet.dts = previous + 1
        for back, early in enumerate(reversed(leading), start=1):
            early.dts = packet.dts - back
        yield from leading
        leading = []
        previous = packet.dts
        yield packet
    for early in leading:  # no packet said when to decode: in presentation order, as they came
        early.dts = early.pts
    yield from leading


def _decode_seconds(packet: Packet) -> float:
    ticks = packet.dts if packet.dts is not None else packet.pts or 0
    return float(ticks * (packet.time_base or Fraction(1, 90000)))
