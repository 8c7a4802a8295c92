"""The video pipeline: decode, detect on key frames, track between them, obscure, encode, copy audio.
`render_video` runs the same pipeline with given boxes instead of detection and tracking.

Three threads overlap so that both cores work: a reader decodes (PyAV releases the GIL), the calling thread
runs the detectors (ONNX Runtime releases it too) and the tracker, and a writer obscures and encodes
(libx264 runs its own threads). Detection runs on every `detect_every`-th frame and on the last one; the
frames between wait in a small look-ahead buffer until the next key frame is detected, then get boxes moved
linearly between the two (see `veil.engine.tracking`).

A `FrameRange` runs the pipeline on one segment of a longer video (`veil.engine.segments`): detection keeps
to the whole video's grid of key frames, so a segment's boxes are those a single run would choose, given
enough frames around the segment (`context_frames`) for the tracker to know what is there.

Orientation: frames stay in their coded orientation and the display matrix is copied, so players turn the
output exactly as they turned the input. Detectors see the upright (displayed) frame, because face models
miss sideways faces; report boxes and `MediaInfo` width/height are in that displayed orientation too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector
from veil.engine.errors import SizeMismatchError
from veil.engine.media.video import (
    DecodedFrame,
    EncoderSettings,
    ReadWindow,
    VideoProps,
    VideoReader,
    VideoWriter,
    edit_region,
    frame_from_bgr,
    frame_to_bgr,
)
from veil.engine.redactors import draw_boxes, obscure
from veil.engine.redactors.mask import FrameBGR
from veil.engine.redactors.style import StylesByLabel
from veil.engine.report import MediaInfo, Report, as_reported
from veil.engine.tracking import KeyframeTracker, TrackerConfig, fill_between

__all__ = [
    "DETECT_INTERVAL_S",
    "FrameRange",
    "Progress",
    "VideoOptions",
    "anonymize_video",
    "context_frames",
    "render_video",
]

Progress = Callable[[int, int | None], None]
"""Called as progress(frames_done, frames_total or None) after each output frame."""

_QUEUE_FRAMES = 8  # frames in flight per hand-over beyond the look-ahead; bounds memory on 4K input
_POLL_S = 0.1  # how often a blocked thread checks whether the run was cancelled
# Seconds between detections when detect_every is None. bench/video_coverage.py (faces panning at up to
# 250 px/s at 30 fps): coverage 1.000 with detection every 0.27 s and 0.4 s, 0.90 at 0.53 s.
DETECT_INTERVAL_S = 0.3


@dataclass(frozen=True)
class VideoOptions:
    """How videos are encoded and how often detection runs.

    Attributes:
        codec: FFmpeg encoder name. The default H.264 is replaced by VP9 where the container cannot hold it
            (WebM); any other codec the container cannot hold is an error.
        crf: constant-quality factor (x264/x265: 0-51, lower is better; VP9: 0-63).
        preset: x264/x265 speed preset.
        keep_audio: copy every audio and subtitle stream unchanged; False drops them.
        detect_every: run the detectors on every N-th frame (and the last), tracking in between; 1 = all.
            None (default) picks N for about one detection per `DETECT_INTERVAL_S` of video: 9 frames at
            30 fps, 3 at 10 fps. A fixed frame count would be too sparse on slow-rate video.
        draw: outline boxes with label and score instead of obscuring them, for checking.
        key_frames_by_label: run the detectors of a label only on every N-th key frame, e.g. {"plate": 3}
            for a costly plate detector; between runs its tracks are carried at their predicted position.
            Labels not listed are looked for on every key frame; a last frame off the stride runs them all.
    """

    codec: str = "libx264"
    crf: int = 23
    preset: str = "veryfast"
    keep_audio: bool = True
    detect_every: int | None = None
    draw: bool = False
    key_frames_by_label: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FrameRange:
    """The part of a video one run covers; frame indices count from 0 in presentation order over the
    whole video, pts are in the video stream's time base.

    Attributes:
        seek_pts, seek_index: the key frame decoding starts at (its pts and index), at or before `start`.
        start, stop: frames [start, stop) are looked at: detected, tracked and reported.
        write_start, write_stop: frames [write_start, write_stop), inside the above, are written; the
            frames around them only let the tracker see what comes before and after.
        origin_pts: pts of frame 0, which report times count from.
    """

    seek_pts: int
    seek_index: int
    start: int
    stop: int
    write_start: int
    write_stop: int
    origin_pts: int


def anonymize_video(
    src: Path,
    dst: Path | None,
    detectors: Sequence[Detector],
    styles: StylesByLabel,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
    frames: FrameRange | None = None,
) -> Report:
    """Obscures every detected and tracked face and plate in a video.

    Args:
        src: any video FFmpeg reads (mp4, mov, mkv, avi, webm...).
        dst: output path, same container type as `src`, written as given; None only detects.
        detectors: run on the upright frame (H, W, 3 BGR) of each key frame; their boxes are merged.
        styles: how each label is obscured.
        options: encoder and detection-stride settings.
        progress: see `Progress`; with `frames`, it counts the frames looked at.
        frames: only this part of the video; `dst` then holds the frames to write and no other stream.

    Returns:
        The report: the output's size (displayed orientation), fps, frame count and duration, and for every
        frame with a box, each box obscured in it (before mask scaling, displayed orientation, track ids set).
        With `frames`: frame count and duration of the written frames, duration counted from frame 0, and
        the boxes of every frame looked at.

    Raises:
        MediaError: `src` does not exist.
        CorruptMediaError: `src` is empty, damaged, truncated or has no video stream.
        OutputError: `dst` cannot be written or the codec cannot be used.
        ModelError: a detector failed.
    """
    options = options or VideoOptions()
    if options.detect_every is not None and options.detect_every < 1:
        raise ValueError(f"detect_every must be at least 1, got {options.detect_every}")
    chosen = options
    return _run_pipeline(
        src,
        dst,
        options,
        lambda reader, writer: _DetectRun(reader, writer, detectors, styles, chosen, progress, frames),
        frames,
    )


def render_video(
    src: Path,
    dst: Path,
    boxes_by_frame: Mapping[int, Detections],
    styles: StylesByLabel,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
    size_wh: tuple[int, int] | None = None,
    frames: FrameRange | None = None,
) -> Report:
    """Obscures exactly the given boxes in a video, with no detection; encoding as `anonymize_video`.

    Args:
        src: any video FFmpeg reads.
        dst: output path, same container type as `src`.
        boxes_by_frame: frame index (from 0, presentation order) -> boxes to obscure in that frame, xyxy
            pixels of the displayed (upright) frame. Frames not listed are left as they are; indices past
            the last frame are ignored.
        styles: how each label is obscured.
        options: encoder settings and `draw`; `detect_every` and `key_frames_by_label` are not used.
        progress: see `Progress`.
        size_wh: the displayed width and height the boxes were made for; None skips the check.
        frames: only this part of the video, as `anonymize_video` takes it (a segment's written frames
            are cut where an anonymize task's are, so a long video renders to the same parts).

    Returns:
        The report of what was obscured: the given boxes clipped to the frame (boxes left with no area
        dropped), for the frames the video has.

    Raises:
        MediaError: `src` does not exist.
        CorruptMediaError: `src` is empty, damaged, truncated or has no video stream.
        OutputError: `dst` cannot be written or the codec cannot be used.
        SizeMismatchError: the video's displayed size is not `size_wh` (checked before encoding).
    """
    chosen = options or VideoOptions()
    return _run_pipeline(
        src,
        dst,
        chosen,
        lambda reader, writer: _GivenRun(
            reader, writer, boxes_by_frame, styles, chosen, progress, size_wh, frames
        ),
        frames,
    )


def context_frames(frame_rate: Fraction | None, options: VideoOptions) -> tuple[int, int]:
    """How many frames before and after a `FrameRange`'s written frames the run must look at so that its
    boxes are those of a single run: before, the key frames a missed face stays tracked over, and one
    more; after, one detection stride, up to the key frame the last written frames move towards.

    Args:
        frame_rate: the video's frames per second, None where unknown.
        options: the run's options (`detect_every`).
    """
    stride = _stride(frame_rate, options)
    return stride * (_tracker_config(frame_rate, stride).max_misses + 1), stride


def _run_pipeline(
    src: Path,
    dst: Path | None,
    options: VideoOptions,
    make_run: Callable[[VideoReader, VideoWriter | None], _Run],
    frames: FrameRange | None = None,
) -> Report:
    """Opens the reader and (for `dst`) the writer, runs one pass, and leaves no partial `dst` on failure."""
    window = None if frames is None else ReadWindow(frames.seek_pts, frames.seek_index, frames.stop)
    reader = VideoReader(src, copy_streams=options.keep_audio and dst is not None, window=window)
    writer = None
    try:
        if dst is not None:
            settings = EncoderSettings(options.codec, options.crf, options.preset)
            writer = VideoWriter(dst, reader.props, reader.copied_streams, settings)
        report = make_run(reader, writer).execute()
    except BaseException:
        if writer is not None:
            writer.abort()
        if dst is not None:  # opening the writer may have created or truncated it; leave no partial file
            dst.unlink(missing_ok=True)
        raise
    finally:
        reader.close()
    return report


# Blur reads around each mask; this much of the box size around it keeps a region's blur close to a
# whole-frame one.
_CONTEXT = 0.5


def _affected_region(
    boxes: Detections, styles: StylesByLabel, width: int, height: int
) -> tuple[int, int, int, int]:
    """The xyxy pixel rectangle holding every box's mask and its blur context, clipped to the frame."""
    corners = []
    for box, label in zip(boxes.xyxy, boxes.label, strict=True):
        grow = styles.for_label(str(label)).mask_scale / 2 + _CONTEXT
        centre, size = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
        corners.append(np.concatenate([centre - size * grow, centre + size * grow]))
    stacked = np.array(corners)
    x0, y0 = np.floor(stacked[:, :2].min(axis=0)).clip(0)
    x1, y1 = np.ceil(stacked[:, 2:].max(axis=0))
    return int(x0), int(y0), int(min(x1, width)), int(min(y1, height))


def _shifted(boxes: Detections, origin: tuple[int, int]) -> Detections:
    """The boxes in the coordinates of a region whose top-left corner is `origin` (x, y)."""
    x, y = origin
    offset = np.array([x, y, x, y], np.float32)
    return Detections(boxes.xyxy - offset, boxes.confidence, boxes.label, boxes.track_id, boxes.source)


@dataclass
class _Key:
    """The tracked boxes of the last key frame, displayed orientation."""

    index: int
    boxes: Detections


class _Run:
    """One pass over a video; `execute` owns the threads and the look-ahead buffer. A reader thread decodes,
    the calling thread chooses each frame's boxes (`_choose_boxes`, in subclasses) and a writer thread
    obscures and encodes."""

    def __init__(
        self,
        reader: VideoReader,
        writer: VideoWriter | None,
        styles: StylesByLabel,
        options: VideoOptions,
        progress: Progress | None,
        look_ahead: int,
        frames: FrameRange | None = None,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.styles, self.options, self.progress = styles, options, progress
        self.frames = frames
        self.props = reader.props
        self.display_wh = self.props.display_wh
        self.report = Report(MediaInfo("video", *self.display_wh))
        self.cancel = threading.Event()
        self.errors: list[BaseException] = []
        size = look_ahead + _QUEUE_FRAMES
        self.decoded = _Channel(size, self.cancel)
        self.encoded = _Channel(size, self.cancel)
        self.frames_seen = 0
        self.frames_out = 0
        self.frames_total = reader.props.frame_count if frames is None else frames.stop - frames.start
        self.first_pts: int | None = None if frames is None else frames.origin_pts
        self.last_frame: av.VideoFrame | None = None

    def execute(self) -> Report:
        threads = [self._thread(self._read)]
        if self.writer is not None:
            threads.append(self._thread(self._write))
        try:
            self._choose_boxes()
            self.encoded.put(_END)
        except _Cancelled:
            pass
        except BaseException:
            self.cancel.set()
            raise
        finally:
            for thread in threads:
                thread.join()
        if self.errors:
            raise self.errors[0]
        self.report.media = self._media_info()
        return self.report

    def _thread(self, target: Callable[[], None]) -> threading.Thread:
        def body() -> None:
            try:
                target()
            except _Cancelled:
                pass
            except BaseException as exc:
                self.errors.append(exc)
                self.cancel.set()

        thread = threading.Thread(target=body, name=f"veil-video-{target.__name__}", daemon=True)
        thread.start()
        return thread

    def _choose_boxes(self) -> None:
        """Main thread: takes `decoded` items, passes packets on and `_emit`s every frame in order."""
        raise NotImplementedError

    def _wants_bgr(self, index: int) -> bool:
        """Whether the reader converts frame `index` to BGR ahead, for the main thread."""
        return False

    def _read(self) -> None:
        """Reader thread: decodes, and converts the frames the main thread needs to BGR meanwhile."""
        for item in self.reader.items():
            if isinstance(item, DecodedFrame) and self.frames is not None and item.index < self.frames.start:
                continue  # decoded from the key frame on, only to reach the range
            if isinstance(item, DecodedFrame) and self._wants_bgr(item.index):
                self.decoded.put((item, frame_to_bgr(item.frame)))
            else:
                self.decoded.put((item, None))
        self.decoded.put(_END)

    def _write(self) -> None:
        """Writer thread: obscures and encodes frames, remuxes copied packets, then finishes the file."""
        assert self.writer is not None
        for item in self.encoded.items():
            if isinstance(item, av.Packet):
                self.writer.write_packet(item)
            else:
                frame, bgr, boxes = item
                self.writer.write_frame(self._render(frame, bgr, boxes))
        self.writer.close()

    def _render(self, frame: av.VideoFrame, bgr: FrameBGR | None, coded: Detections) -> av.VideoFrame:
        if not len(coded):
            return frame  # nothing to obscure: encode the decoded frame as it is, no BGR round trip
        if not self.options.draw:
            # Convert only the part that changes, key frames too: a whole-frame round trip through BGR
            # shifts every pixel a level or two, so key frames would flicker and a render of the same
            # boxes would not give the same video.
            roi = _affected_region(coded, self.styles, frame.width, frame.height)
            edited = edit_region(
                frame, roi, lambda part, origin: obscure(part, _shifted(coded, origin), self.styles)
            )
            if edited is not None:
                return edited
        bgr = bgr if bgr is not None else frame_to_bgr(frame)
        out = draw_boxes(bgr, coded) if self.options.draw else obscure(bgr, coded, self.styles)
        return frame_from_bgr(out, frame)

    def _emit(self, item: DecodedFrame, bgr: FrameBGR | None, boxes: Detections) -> None:
        frame = item.frame
        pts = frame.pts or 0  # the reader gives every frame a pts
        if self.first_pts is None:
            self.first_pts = pts
        boxes = as_reported(boxes).clipped(*self.display_wh)
        time_s = float((pts - self.first_pts) * self.props.time_base)
        self.report.add(item.index, time_s, boxes)
        self.frames_seen += 1
        if self.frames is None or self.frames.write_start <= item.index < self.frames.write_stop:
            if self.writer is not None:
                self.encoded.put((frame, bgr, _to_coded(boxes, self.props)))
            self.frames_out += 1
            self.last_frame = frame
        if self.progress is not None:
            self.progress(self.frames_seen, self.frames_total)

    def _media_info(self) -> MediaInfo:
        rate = self.props.frame_rate
        duration = None
        if self.last_frame is not None and self.first_pts is not None:
            last = self.last_frame
            ticks = (last.pts or 0) - self.first_pts + (last.duration or 0)
            duration = float(ticks * self.props.time_base)
            if not last.duration and rate:
                duration += float(1 / rate)
        return MediaInfo("video", *self.display_wh, float(rate) if rate else None, self.frames_out, duration)


class _DetectRun(_Run):
    """Detection on every `stride`-th frame (and the last), tracking and interpolation between."""

    def __init__(
        self,
        reader: VideoReader,
        writer: VideoWriter | None,
        detectors: Sequence[Detector],
        styles: StylesByLabel,
        options: VideoOptions,
        progress: Progress | None,
        frames: FrameRange | None,
    ) -> None:
        self.stride = _stride(reader.props.frame_rate, options)
        super().__init__(reader, writer, styles, options, progress, self.stride, frames)
        self.detectors = detectors
        self.tracker = KeyframeTracker(_tracker_config(self.props.frame_rate, self.stride))

    def execute(self) -> Report:
        # ONNX Runtime releases the GIL, so the detectors of one key frame run side by side.
        with ThreadPoolExecutor(max(1, len(self.detectors)), thread_name_prefix="veil-detect") as pool:
            self.pool = pool
            return super().execute()

    def _wants_bgr(self, index: int) -> bool:
        return index % self.stride == 0  # key frames: the detectors need them

    def _choose_boxes(self) -> None:
        """Main thread: detection on key frames, tracking, and boxes for the frames between."""
        key: _Key | None = None
        pending: list[tuple[DecodedFrame, FrameBGR | None]] = []
        for item, bgr in self.decoded.items():
            if not isinstance(item, DecodedFrame):
                self.encoded.put(item)  # audio/subtitle packets: the muxer interleaves them
            elif item.index % self.stride == 0 or key is None:  # a range may start off the grid
                key = self._key_frame(key, pending, item, bgr)
                pending = []
            else:
                pending.append((item, bgr))
        if pending:  # the last frame becomes a key frame so no tail frame goes without a detection
            last, bgr = pending.pop()
            self._key_frame(key, pending, last, bgr)

    def _key_frame(
        self,
        key: _Key | None,
        pending: list[tuple[DecodedFrame, FrameBGR | None]],
        item: DecodedFrame,
        bgr: FrameBGR | None,
    ) -> _Key:
        bgr = bgr if bgr is not None else frame_to_bgr(item.frame)
        upright = np.ascontiguousarray(np.rot90(bgr, self.props.rotation // 90))
        due = self._due_detectors(item.index)
        raw = Detections.merge(list(self.pool.map(lambda detector: detector.detect(upright), due)))
        boxes = self.tracker.update(item.index, raw, {label for d in due for label in d.info.labels})
        for frame, frame_bgr in pending:
            assert key is not None  # the first frame is always a key frame
            fraction = (frame.index - key.index) / (item.index - key.index)
            self._emit(frame, frame_bgr, fill_between(key.boxes, boxes, fraction))
        self._emit(item, bgr, boxes)
        return _Key(item.index, boxes)

    def _due_detectors(self, index: int) -> list[Detector]:
        """The detectors to run on key frame `index` (see `VideoOptions.key_frames_by_label`); counted on
        the whole video's grid, so every segment of a split video runs them on the same frames. A frame
        off the grid (the last, or a range's first) runs them all."""
        number, off_grid = divmod(index, self.stride)
        every = self.options.key_frames_by_label
        return [
            d
            for d in self.detectors
            if off_grid or number % max((every.get(label, 1) for label in d.info.labels), default=1) == 0
        ]


class _GivenRun(_Run):
    """The given boxes of each frame, no detection; frames are never converted ahead (the writer converts
    only the regions it obscures)."""

    def __init__(
        self,
        reader: VideoReader,
        writer: VideoWriter | None,
        boxes_by_frame: Mapping[int, Detections],
        styles: StylesByLabel,
        options: VideoOptions,
        progress: Progress | None,
        size_wh: tuple[int, int] | None,
        frames: FrameRange | None,
    ) -> None:
        super().__init__(reader, writer, styles, options, progress, look_ahead=1, frames=frames)
        if size_wh is not None and tuple(size_wh) != self.display_wh:
            raise SizeMismatchError(
                f"{reader.src.name}: the boxes were made for {size_wh[0]}x{size_wh[1]} pixels, the video "
                f"shows {self.display_wh[0]}x{self.display_wh[1]}"
            )
        self.boxes_by_frame = boxes_by_frame

    def _choose_boxes(self) -> None:
        for item, _bgr in self.decoded.items():
            if isinstance(item, DecodedFrame):
                self._emit(item, None, self.boxes_by_frame.get(item.index, _NO_BOXES))
            else:
                self.encoded.put(item)


_NO_BOXES = Detections.empty()


def _stride(frame_rate: Fraction | None, options: VideoOptions) -> int:
    if options.detect_every is not None:
        return options.detect_every
    return max(1, round(DETECT_INTERVAL_S * _fps(frame_rate)))


def _fps(frame_rate: Fraction | None) -> float:
    return float(frame_rate) if frame_rate else 25.0


def _tracker_config(frame_rate: Fraction | None, stride: int) -> TrackerConfig:
    """Keeps a missed track covered for about half a second, and at least two key frames."""
    return TrackerConfig(max_misses=max(2, round(0.5 * _fps(frame_rate) / stride)))


def _to_coded(boxes: Detections, props: VideoProps) -> Detections:
    """Maps boxes from the displayed (upright) frame to the coded frame; see np.rot90 for the turns."""
    x1, y1, x2, y2 = boxes.xyxy.T
    width, height = props.width, props.height
    turns = props.rotation // 90
    if turns == 0:
        return boxes
    if turns == 1:  # display (x, y) = (y_c, W - x_c)
        coded = np.stack([width - y2, x1, width - y1, x2], axis=1)
    elif turns == 2:  # display (x, y) = (W - x_c, H - y_c)
        coded = np.stack([width - x2, height - y2, width - x1, height - y1], axis=1)
    else:  # display (x, y) = (H - y_c, x_c)
        coded = np.stack([y1, height - x2, y2, height - x1], axis=1)
    return Detections(coded, boxes.confidence, boxes.label, boxes.track_id, boxes.source)


class _Cancelled(Exception):
    """Another stage failed; this one stops quietly and the first error is raised."""


_END = object()


class _Channel:
    """A bounded queue between two threads that stops waiting when the run is cancelled."""

    def __init__(self, size: int, cancel: threading.Event) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._cancel = cancel

    def put(self, item: Any) -> None:
        while not self._cancel.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise _Cancelled

    def items(self) -> Iterator[Any]:
        """Yields items until the end marker; raises _Cancelled when the run is cancelled."""
        while True:
            if self._cancel.is_set():
                raise _Cancelled
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item
