"""What a video's container says, read without decoding a frame: its size, rate and length, and whether the
file holds what the container announces.

For uploads this module runs as a script in a child process of its own (see `veil.core.probing.video`),
with its memory capped, so it imports nothing of Veil: a container can make FFmpeg build huge indexes from
a few bytes (an MP4 declaring 85 million samples costs a gigabyte before any packet is read), and that must
cost the API nothing. Videos Veil encoded itself are read in-process. As a script it answers one JSON line
on stdout: `{"header": {...}}` or `{"refused": "why, for a person"}`.

FFmpeg's stream probing decodes a few frames of some codecs (H.264 among them) to learn their delay;
`skip_frame=all` lets it parse the headers it needs and skip every picture, so a huge frame size costs no
memory here. Whether the file is whole is told by reading every packet to the end (I/O only, nothing is
decoded): a file cut short holds fewer frames than its header counts, ends before its declared duration,
or ends inside its last packet.
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

__all__ = [
    "RefusedVideoError",
    "VideoHeader",
    "check_video_complete",
    "main",
    "read_video_header",
    "too_much_memory",
]

# One decoding thread: FFmpeg's probing opens a decoder, and a thread per core would reserve address space
# (stacks, malloc arenas) that the memory cap counts.
_NO_DECODING = {"skip_frame": "all", "threads": "1"}
# As the engine decides that a decoded video ended early: more than 1 s and 5% short of its declared length.
_SHORTFALL_S = 1.0
_SHORTFALL_SHARE = 0.05


class RefusedVideoError(Exception):
    """A video no worker could process; the message says why, for a person."""


@dataclass(frozen=True)
class VideoHeader:
    """A video as its container describes it: `width` and `height` as coded, pixels; `duration` in
    seconds, `fps` and `frame_count` when the container records them."""

    width: int
    height: int
    duration: float | None
    fps: float | None
    frame_count: int | None

    def properties(self) -> dict[str, Any]:
        """The known values, as a file's `properties` lists them."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def read_video_header(path: Path, max_pixels: int) -> VideoHeader:
    """The size, rate and length of the file's video stream, from the container.

    Raises:
        RefusedVideoError: the container cannot be read, holds no video stream (audio alone, or
            only a cover picture), or its frames have more than `max_pixels` pixels.
    """
    with _open(path) as container:
        stream = _video_stream(container)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > max_pixels:
            raise RefusedVideoError(
                f"The video's frames are {width}x{height} pixels ({width * height:,}), over the limit of "
                f"{max_pixels:,} pixels; send a smaller one."
            )
        duration = container.duration / av.time_base if container.duration else None
        return VideoHeader(
            width=width,
            height=height,
            duration=round(duration, 3) if duration and duration > 0 else None,
            fps=round(float(stream.average_rate), 3) if stream.average_rate else None,
            frame_count=stream.frames if stream.frames > 0 else None,
        )


def check_video_complete(path: Path) -> None:
    """Reads every packet (without decoding) to check that the file holds what its container declares.

    Raises:
        RefusedVideoError: the file ends inside a packet, holds fewer video frames than its header
            counts, or ends well before its declared duration; or it cannot be read to the end.
    """
    with _open(path) as container:
        stream = _video_stream(container)
        held = _Held()
        try:
            for packet in container.demux():
                held.add(packet, is_video=packet.stream.index == stream.index)
        except MemoryError:
            raise
        except av.FFmpegError as exc:
            raise _unreadable(f"reading it stopped part way ({_reason(exc)})") from exc
        if held.last_cut:
            raise _cut_short("it ends inside its last packet")
        if stream.frames > 0 and held.video_frames < stream.frames:
            raise _cut_short(f"its header counts {stream.frames} frames, the file holds {held.video_frames}")
        declared_s = container.duration / av.time_base if container.duration else 0.0
        start_s = container.start_time / av.time_base if container.start_time else 0.0
        held_s = max(held.end_s - start_s, 0.0)
        if declared_s - held_s > max(_SHORTFALL_S, _SHORTFALL_SHARE * declared_s):
            raise _cut_short(f"it declares {declared_s:.1f} s, the file holds {held_s:.1f} s")


@dataclass
class _Held:
    """What the packets read so far hold."""

    video_frames: int = 0
    end_s: float = 0.0
    last_cut: bool = False

    def add(self, packet: av.Packet[Any], *, is_video: bool) -> None:
        if packet.dts is None and packet.size == 0:
            return  # demux ends each stream with an empty flush packet
        self.video_frames += is_video
        self.last_cut = packet.is_corrupt  # FFmpeg flags a packet that the end of the file cut off
        if packet.pts is not None and packet.time_base is not None:
            self.end_s = max(self.end_s, float((packet.pts + (packet.duration or 0)) * packet.time_base))


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), options=_NO_DECODING, metadata_errors="ignore")
    except MemoryError:
        raise  # FFmpeg's too: the container asked for more than the cap; `main` says so
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise _unreadable(_reason(exc)) from exc


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    """The first video stream that is not a cover picture (the engine processes that one)."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if stream.codec_context is None:  # PyAV leaves it out when FFmpeg has no decoder for the codec
            raise RefusedVideoError("The video's codec is not one Veil can decode.")
        return stream
    kinds = {stream.type for stream in container.streams}
    if container.streams.video:
        holds = "only a still cover picture"
    elif "audio" in kinds:
        holds = "audio only"
    else:
        holds = "no picture"
    raise RefusedVideoError(
        f"The file holds {holds} and no video stream; send a photo or a video with pictures."
    )


def _unreadable(reason: str) -> RefusedVideoError:
    return RefusedVideoError(f"The video cannot be read: {reason}. It may be damaged or cut short.")


def _cut_short(reason: str) -> RefusedVideoError:
    return RefusedVideoError(
        f"The video is cut short: {reason} (an interrupted upload or copy?). Send the whole file."
    )


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends, on one line."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def too_much_memory(max_bytes: int) -> str:
    return (
        f"The video's container declares more than Veil reads within {max_bytes // 2**20} MiB (such as "
        "millions of frames in a small file); it is damaged or made to exhaust memory."
    )


def main() -> None:
    """`video_container.py PATH MAX_PIXELS MAX_BYTES [--complete]`: the header, and with `--complete` the
    check that the file is whole, in at most MAX_BYTES of address space."""
    path, max_pixels, max_bytes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    try:
        header = read_video_header(path, max_pixels)
        if "--complete" in sys.argv[4:]:
            check_video_complete(path)
    except RefusedVideoError as exc:
        answer: dict[str, Any] = {"refused": str(exc)}
    except MemoryError:
        answer = {"refused": too_much_memory(max_bytes)}
    else:
        answer = {"header": asdict(header)}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
