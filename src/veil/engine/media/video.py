"""Video decode, encode and stream copy with PyAV (FFmpeg's libraries), every av error wrapped here.

`VideoReader` decodes the first video stream of a file (or, with a `ReadWindow`, a part of it starting at a
key frame) and hands out, in file order, its frames and the untouched packets of the audio and subtitle
streams to copy. `VideoWriter` encodes frames into the same
container type, keeping each frame's pts, the frame rate and the rotation (display matrix), and remuxes
the copied packets unchanged. Frames cross this boundary as `av.VideoFrame` so that a frame with nothing to
obscure is re-encoded without a round trip through BGR.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import av
import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.errors import CorruptMediaError, MediaError, OutputError

__all__ = [
    "DecodedFrame",
    "EncoderSettings",
    "Packet",
    "ReadWindow",
    "VideoProps",
    "VideoReader",
    "VideoWriter",
    "edit_region",
    "frame_from_bgr",
    "frame_to_bgr",
    "muxer_for",
    "upright_frames",
]

FrameBGR = npt.NDArray[np.uint8]
if TYPE_CHECKING:
    Packet = av.Packet[Any]
else:  # PyAV's stubs make Packet generic over its stream; the runtime class is not subscriptable
    Packet = av.Packet

DEFAULT_CODEC = "libx264"
# When the container cannot hold the default codec (WebM takes only VP8/VP9/AV1), its own choice is used.
_CONTAINER_CODECS = {"webm": "libvpx-vp9"}
# Demuxer names list several formats; the muxer is picked by the input's file extension among them.
_MUXER_BY_SUFFIX = {
    ".mov": "mov",
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".3gp": "3gp",
    ".webm": "webm",
    ".mkv": "matroska",
}
_TRUNCATION_TOLERANCE_S = 1.0
_MUXER_BY_DEMUXER = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "matroska,webm": "matroska"}


@dataclass(frozen=True)
class VideoProps:
    """What the input's video stream looks like, read from its first decoded frame.

    Attributes:
        width: coded frame width in pixels (before rotation).
        height: coded frame height in pixels.
        time_base: seconds per pts tick of the video stream.
        frame_rate: average frames per second, or None where the container does not say.
        frame_count: frames the container declares, or None where it does not (a progress hint only).
        rotation: 0, 90, 180 or 270: degrees counter-clockwise a player turns coded frames to show them.
        display_matrix: the nine int32 values of FFmpeg's display matrix, copied as-is to the output.
        muxer: FFmpeg muxer name of the input's container type, e.g. "mp4", "matroska", "avi".
        sample_aspect_ratio: pixel aspect ratio, None when square or unknown.
    """

    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    frame_count: int | None
    rotation: int
    display_matrix: tuple[int, ...] | None
    muxer: str
    sample_aspect_ratio: Fraction | None

    @property
    def display_wh(self) -> tuple[int, int]:
        """Width and height as a player shows the frames, after `rotation`."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame; `index` counts from 0 in presentation order, `frame.pts` is in `time_base` ticks."""

    index: int
    frame: av.VideoFrame


@dataclass(frozen=True)
class ReadWindow:
    """A part of the video stream to decode, for one segment of a video split over several workers.

    Attributes:
        seek_pts: pts of a key frame, in the video stream's time base; decoding starts there, and frames
            shown before it (in an earlier group of pictures) are skipped.
        seek_index: that key frame's index in the whole video, presentation order from 0; the frames
            handed out are numbered from it.
        stop_index: decoding ends before this frame index.
    """

    seek_pts: int
    seek_index: int
    stop_index: int


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder choice; `crf` and `preset` apply where the codec has them (x264, x265; crf for VP9)."""

    codec: str = DEFAULT_CODEC
    crf: int = 23
    preset: str = "veryfast"


class VideoReader:
    """Decodes the first video stream of `src`; with `copy_streams`, also yields audio/subtitle packets;
    with `window`, only that part of the video, no other stream, and no truncation check (which needs the
    whole stream).

    Raises:
        MediaError: `src` does not exist.
        CorruptMediaError: the file is empty, not media, damaged, or has no decodable video stream.
    """

    def __init__(self, src: Path, copy_streams: bool = True, window: ReadWindow | None = None) -> None:
        if not src.is_file():
            raise MediaError(f"{src}: no such file")
        self.src = src
        self._window = window
        self._container = _wrap_read(src, lambda: av.open(str(src), metadata_errors="ignore"))
        try:
            self.props, self.copied_streams, self._items = self._start(copy_streams)
        except BaseException:
            self._container.close()
            raise

    def items(self) -> Iterator[DecodedFrame | Packet]:
        """Frames of the video stream and packets to copy, in file order (frames in presentation order).

        Raises:
            CorruptMediaError: decoding or demuxing failed part way, e.g. in a truncated file.
        """
        yield from self._items

    def close(self) -> None:
        self._container.close()

    def _start(
        self, copy_streams: bool
    ) -> tuple[VideoProps, list[av.stream.Stream], Iterator[DecodedFrame | Packet]]:
        if not self._container.streams.video:
            raise CorruptMediaError(f"{self.src.name}: no video stream")
        video = self._container.streams.video[0]
        video.thread_type = "AUTO"  # frame + slice threads: decoding runs beside detection and encoding
        copied = (
            [s for s in self._container.streams if s.type in ("audio", "subtitle")]
            if copy_streams and self._window is None
            else []
        )
        demuxed = self._demux(video, copied) if self._window is None else self._demux_window(video)
        items = _wrap_iter(self.src, demuxed)
        pending: deque[DecodedFrame | Packet] = deque()
        for item in items:  # the output is set up from the first frame, so read up to it now
            pending.append(item)
            if isinstance(item, DecodedFrame):
                return self._props(video, item.frame), copied, _chain(pending, items)
        raise CorruptMediaError(f"{self.src.name}: the video stream has no decodable frame")

    def _demux(
        self, video: av.VideoStream, copied: list[av.stream.Stream]
    ) -> Iterator[DecodedFrame | Packet]:
        index, first_pts, last_pts = 0, 0, None
        step = _pts_step(video)
        # AVI stores no presentation times, only a rate; its decoded pts are decode-order guesses.
        renumber = "avi" in self._container.format.name.split(",")
        for packet in self._container.demux([video, *copied]):
            if packet.stream is not video:
                if packet.dts is not None:  # demux ends each stream with an empty flush packet
                    yield packet
                continue
            for frame in video.decode(packet):
                # Encoders need strictly increasing pts; a missing or repeated pts gets the next free tick.
                if renumber:
                    frame.pts = index * step
                elif frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                    frame.pts = step if last_pts is None else last_pts + step
                first_pts = frame.pts if last_pts is None else first_pts
                last_pts = frame.pts
                yield DecodedFrame(index, frame)
                index += 1
        if last_pts is not None:
            time_base = video.time_base or Fraction(1, 90000)
            self._check_complete(float((last_pts - first_pts + step) * time_base), video)

    def _demux_window(self, video: av.VideoStream) -> Iterator[DecodedFrame | Packet]:
        """The frames of the window, from its key frame on, numbered from its index; pts are kept as they
        are (a file is only split where every frame has its own pts)."""
        window = self._window
        assert window is not None
        if window.seek_index > 0:
            self._container.seek(window.seek_pts, stream=video, backward=True)
        index = window.seek_index
        for packet in self._container.demux(video):
            for frame in video.decode(packet):
                if frame.pts is None or frame.pts < window.seek_pts:
                    continue  # before the window: an earlier key frame's pictures
                if index == window.seek_index and frame.pts != window.seek_pts:
                    raise CorruptMediaError(f"{self.src.name}: no key frame at pts {window.seek_pts}")
                yield DecodedFrame(index, frame)
                index += 1
                if index == window.stop_index:
                    return
        raise CorruptMediaError(
            f"{self.src.name}: the video ends at frame {index}, before frame {window.stop_index}"
        )

    def _check_complete(self, decoded_s: float, video: av.VideoStream) -> None:
        """Fails on a file that ends early: its header promised a video more than 1 s and 5% longer.

        Matroska and WebM files cut short decode cleanly up to the cut, so without this check a truncated
        upload would silently give a shorter output.
        """
        if video.duration and video.time_base:
            declared_s = float(video.duration * video.time_base)
        elif self._container.duration:
            declared_s = self._container.duration / av.time_base
        else:
            return
        if declared_s - decoded_s > max(_TRUNCATION_TOLERANCE_S, 0.05 * declared_s):
            raise CorruptMediaError(
                f"{self.src.name}: truncated video, only {decoded_s:.1f} s of {declared_s:.1f} s decode"
            )

    def _props(self, video: av.VideoStream, first: av.VideoFrame) -> VideoProps:
        matrix = None
        side_data: Any = first.side_data  # the stubs type it as a TypedDict; it is a Mapping of buffers
        if "DISPLAYMATRIX" in {sd.type.name for sd in side_data}:
            raw = bytes(side_data["DISPLAYMATRIX"])
            matrix = tuple(int(v) for v in np.frombuffer(raw[:36], np.int32))
        sar = video.sample_aspect_ratio
        return VideoProps(
            width=first.width,
            height=first.height,
            time_base=video.time_base or Fraction(1, 90000),
            frame_rate=video.average_rate or video.guessed_rate,
            frame_count=video.frames or None,
            rotation=round(first.rotation / 90) % 4 * 90,
            display_matrix=matrix,
            muxer=muxer_for(self.src, self._container.format.name),
            sample_aspect_ratio=sar if sar and sar != 1 else None,
        )


class VideoWriter:
    """Writes frames and copied packets into `dst`, in the input's container type.

    Args:
        dst: output path, written as given (the caller picks temporary names).
        props: the input's video properties; size, time base, rate and rotation are kept.
        copied_streams: input streams whose packets `write_packet` will receive, remuxed unchanged.
        settings: encoder, CRF and preset.

    Raises:
        OutputError: `dst` cannot be created, or the codec is unknown or not allowed in the container.
    """

    def __init__(
        self,
        dst: Path,
        props: VideoProps,
        copied_streams: Sequence[av.stream.Stream],
        settings: EncoderSettings,
    ) -> None:
        self.dst = dst
        try:
            self._container = av.open(str(dst), "w", format=props.muxer)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {dst}: {_reason(exc)}") from exc
        try:
            self._video = self._add_video(props, settings)
            self._copies = {s.index: self._container.add_stream_from_template(s) for s in copied_streams}
        except av.FFmpegError as exc:
            self._container.close()
            raise OutputError(
                f"cannot set up the {settings.codec} encoder for {dst.name}: {_reason(exc)}"
            ) from exc
        except BaseException:
            self._container.close()
            raise
        self._time_base = props.time_base

    def write_frame(self, frame: av.VideoFrame) -> None:
        """Encodes one frame; its pts (in the input's time base) is kept."""
        frame.time_base = self._time_base
        self._guard(lambda: self._container.mux(self._video.encode(frame)))

    def write_packet(self, packet: Packet) -> None:
        """Remuxes one packet of a copied stream unchanged."""
        stream = self._copies.get(packet.stream.index)
        if stream is not None:
            packet.stream = stream
            self._guard(lambda: self._container.mux(packet))

    def close(self) -> None:
        """Flushes the encoder and finishes the file."""
        try:
            self._guard(lambda: self._container.mux(self._video.encode(None)))
        finally:
            self._guard(self._container.close)

    def abort(self) -> None:
        """Closes without flushing, after a failure; the partial file is the caller's to remove."""
        with contextlib.suppress(av.FFmpegError):  # already failing; the first error is the one to report
            self._container.close()

    def _add_video(self, props: VideoProps, settings: EncoderSettings) -> av.VideoStream:
        codec = _codec_for(settings.codec, self._container)
        added = self._container.add_stream(
            codec, rate=props.frame_rate, options=_encoder_options(codec, settings)
        )
        if not isinstance(added, av.VideoStream):
            raise OutputError(f"{codec} is not a video encoder")
        stream = added
        stream.width, stream.height = props.width, props.height
        formats = [f.name for f in av.Codec(codec, "w").video_formats or ()]
        stream.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
        stream.time_base = props.time_base
        stream.codec_context.time_base = props.time_base
        stream.thread_type = "AUTO"
        if props.sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = props.sample_aspect_ratio
        if props.display_matrix is not None:
            stream.set_display_matrix(props.display_matrix)
        if props.muxer == "avi":
            stream.codec_context.max_b_frames = 0  # AVI keeps no reordering times; B-frames scramble pts
        return stream

    def _guard(self, action: Callable[[], object]) -> None:
        try:
            action()
        except av.FFmpegError as exc:
            raise OutputError(f"cannot write {self.dst.name}: {_reason(exc)}") from exc


def frame_to_bgr(frame: av.VideoFrame) -> FrameBGR:
    """The frame as an (H, W, 3) uint8 BGR array, converted with the frame's own colourspace and range."""
    return cast(FrameBGR, frame.to_ndarray(format="bgr24"))


def frame_from_bgr(bgr: FrameBGR, like: av.VideoFrame) -> av.VideoFrame:
    """A new frame of `like`'s pixel format, colour tags and pts, from an (H, W, 3) uint8 BGR array.

    Converting back with the source frame's own colourspace and range makes the BGR round trip neutral, so
    obscured frames match the untouched frames around them.
    """
    rgb_frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
    out = rgb_frame.reformat(
        format=like.format.name,
        dst_colorspace=like.colorspace or None,
        dst_color_range=like.color_range or None,
    )
    out.pts, out.time_base = like.pts, like.time_base
    return out


def upright_frames(src: Path, frames: Collection[int]) -> Iterator[tuple[int, FrameBGR]]:
    """(index, upright (H, W, 3) uint8 BGR frame) for each of `frames` of the video, in index order, from
    one pass that stops after the last of them; the frames between are decoded but not converted.

    Raises:
        MediaError: `src` does not exist. CorruptMediaError: it is not a readable video.
    """
    wanted = set(frames)
    if not wanted:
        return
    last = max(wanted)
    reader = VideoReader(src, copy_streams=False)
    turns = reader.props.rotation // 90
    try:
        for item in reader.items():
            if not isinstance(item, DecodedFrame) or item.index not in wanted:
                continue
            bgr = frame_to_bgr(item.frame)
            yield item.index, np.ascontiguousarray(np.rot90(bgr, turns)) if turns else bgr
            if item.index >= last:
                return
    finally:
        reader.close()


RegionEdit = Callable[[FrameBGR, tuple[int, int]], FrameBGR]
"""Takes a (h, w, 3) uint8 BGR region and its top-left corner (x, y) in the frame; returns it edited."""


def edit_region(
    frame: av.VideoFrame, roi_xyxy: tuple[int, int, int, int], edit: RegionEdit
) -> av.VideoFrame | None:
    """Applies `edit` to one region of a yuv420p frame, converting only that region to BGR and back.

    Pixels outside the region keep their exact decoded values, and a small region costs far less than a
    whole-frame round trip. The region is widened to even coordinates (chroma is stored per 2x2 block).

    Args:
        frame: the decoded frame; not modified.
        roi_xyxy: region in coded-frame pixels, x0, y0, x1, y1.
        edit: see `RegionEdit`; called with the widened region.

    Returns:
        A new frame with `frame`'s pts and colour tags, or None when the frame is not yuv420p.
    """
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
        return None
    x0, y0 = roi_xyxy[0] // 2 * 2, roi_xyxy[1] // 2 * 2
    x1, y1 = min(-(-roi_xyxy[2] // 2) * 2, frame.width), min(-(-roi_xyxy[3] // 2) * 2, frame.height)
    if x1 <= x0 or y1 <= y0:
        return None
    planes = cast(FrameBGR, frame.to_ndarray())  # (H * 3/2, W) uint8: the Y plane, then U and V as rows of W
    y, u, v = _yuv_views(planes, frame.width, frame.height)
    region = (slice(y0, y1), slice(x0, x1))
    chroma = (slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2))
    h, w = y1 - y0, x1 - x0
    i420 = np.concatenate([y[region].ravel(), u[chroma].ravel(), v[chroma].ravel()]).reshape(h * 3 // 2, w)
    edited = edit(cast(FrameBGR, cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)), (x0, y0))
    back = cv2.cvtColor(edited, cv2.COLOR_BGR2YUV_I420).ravel()
    y[region] = back[: h * w].reshape(h, w)
    u[chroma] = back[h * w : h * w * 5 // 4].reshape(h // 2, w // 2)
    v[chroma] = back[h * w * 5 // 4 :].reshape(h // 2, w // 2)
    out = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out


def _yuv_views(
    planes: npt.NDArray[np.uint8], width: int, height: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """Writable views of the Y, U and V planes inside a (H * 3/2, W) yuv420p array."""
    flat = planes.reshape(-1)
    luma = width * height
    chroma = luma // 4
    y = flat[:luma].reshape(height, width)
    u = flat[luma : luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2)
    return y, u, v


def _codec_for(codec: str, container: av.container.OutputContainer) -> str:
    if codec not in av.codecs_available:
        raise OutputError(f"codec {codec!r} is not available in this FFmpeg build")
    if codec in container.supported_codecs:
        return codec
    fallback = _CONTAINER_CODECS.get(container.format.name)
    if codec == DEFAULT_CODEC and fallback is not None:
        return fallback
    raise OutputError(f"the {container.format.name} container cannot hold {codec} video")


def _encoder_options(codec: str, settings: EncoderSettings) -> dict[str, str]:
    if codec in ("libx264", "libx265"):
        options = {"crf": str(settings.crf), "preset": settings.preset}
        if codec == "libx265":
            options["x265-params"] = "log-level=error"
        return options
    if codec.startswith("libvpx"):
        # Constant quality needs b=0 for VP9; cpu-used 5 with row threads keeps VP9 usable on few cores.
        return {"crf": str(settings.crf), "b": "0", "cpu-used": "5", "row-mt": "1", "deadline": "good"}
    return {}


def muxer_for(src: Path, demuxer: str) -> str:
    """The FFmpeg muxer that writes `src`'s container type, from its demuxer name and file extension."""
    names = demuxer.split(",")
    by_suffix = _MUXER_BY_SUFFIX.get(src.suffix.lower())
    if by_suffix is not None and (by_suffix in names or (by_suffix == "mp4" and "mov" in names)):
        return by_suffix
    return _MUXER_BY_DEMUXER.get(demuxer, names[0])


def _pts_step(video: av.VideoStream) -> int:
    """Pts ticks of one frame at the stream's rate, at least 1."""
    rate = video.average_rate or video.guessed_rate
    if not rate or not video.time_base:
        return 1
    return max(1, round(1 / (rate * video.time_base)))


def _chain(
    first: deque[DecodedFrame | Packet], rest: Iterator[DecodedFrame | Packet]
) -> Iterator[DecodedFrame | Packet]:
    while first:
        yield first.popleft()
    yield from rest


def _wrap_read(src: Path, action: Callable[[], av.container.InputContainer]) -> av.container.InputContainer:
    try:
        return action()
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise CorruptMediaError(f"{src.name}: not a readable video ({_reason(exc)})") from exc


def _wrap_iter(src: Path, items: Iterator[DecodedFrame | Packet]) -> Iterator[DecodedFrame | Packet]:
    try:
        yield from items
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"{src.name}: damaged or truncated video ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
    """The FFmpeg message without the file name PyAV appends, on one line."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
