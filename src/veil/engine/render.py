"""Rendering given boxes: obscure exactly the regions a person listed (or corrected) in a photo or video,
with no detection. Output is written as `Anonymizer.process_file` writes it: photos in their format and
quality under the same metadata rules, videos with the same encoder, frame timing and copied audio."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from veil.engine.anonymizer import AnonymizeOptions, Progress
from veil.engine.detections import Detections
from veil.engine.errors import SizeMismatchError, UnsupportedMediaError
from veil.engine.media.image import read_image, write_image
from veil.engine.media.kinds import MediaKind, media_kind
from veil.engine.redactors import draw_boxes, obscure
from veil.engine.report import MediaInfo, Report, as_reported
from veil.engine.video import FrameRange, VideoOptions, render_video

__all__ = ["Renderer", "render_file"]


def render_file(
    source: Path,
    output: Path,
    boxes_by_frame: Mapping[int, Detections],
    options: AnonymizeOptions | None = None,
    progress: Progress | None = None,
    size_wh: tuple[int, int] | None = None,
    frames: FrameRange | None = None,
) -> Report:
    """Obscures (or with `options.draw` outlines) the given boxes of each frame and writes `output`.

    Args:
        source: a photo or video, told apart by its suffix as `Anonymizer.process_file` does.
        output: where to write the result, same type as `source`.
        boxes_by_frame: frame index -> boxes, xyxy pixels of the displayed (upright) frame. A photo uses
            frame 0 only; a video frame not listed is left as it is.
        options: styles, draw, keep_metadata, max_pixels and the video encoder; detection settings are
            not used.
        progress: called with (frames done, frames in total or None) on videos.
        size_wh: the displayed width and height the boxes were made for; None skips the check.
        frames: videos: only this part (see `render_video`).

    Returns:
        The report of what was obscured: the given boxes clipped to the frame.

    Raises:
        UnsupportedMediaError: `source` is neither a photo nor a video Veil handles.
        MediaError: the file cannot be read.
        OutputError: `output` cannot be written.
        SizeMismatchError: the media's displayed size is not `size_wh`; nothing is written.
    """
    options = options or AnonymizeOptions()
    kind = media_kind(source)
    if kind == "image":
        return _render_image(source, output, boxes_by_frame.get(0, Detections.empty()), options, size_wh)
    if kind == "video":
        video = replace(options.video, draw=options.draw)  # as Anonymizer does: one draw setting
        return render_video(source, output, boxes_by_frame, options.styles, video, progress, size_wh, frames)
    raise UnsupportedMediaError(f"{source.suffix or 'no extension'}: not a photo or video type Veil handles")


@dataclass(frozen=True)
class Renderer:
    """The boxes of one render document, with `Anonymizer.process_file`'s shape: whatever runs an
    anonymizer over a file, or over one segment of a long video, runs a render the same way.

    Attributes:
        boxes_by_frame: frame index -> the boxes to obscure in it, displayed orientation.
        media_type: what the boxes were drawn on, "image" or "video".
        size_wh: the displayed width and height they were drawn on.
        options: how regions are obscured and media written.
    """

    boxes_by_frame: Mapping[int, Detections]
    media_type: MediaKind
    size_wh: tuple[int, int]
    options: AnonymizeOptions

    def process_file(
        self,
        source: Path,
        output: Path | None,
        progress: Progress | None = None,
        frames: FrameRange | None = None,
    ) -> Report:
        """`render_file` of the boxes on `source` into `output` (which a render always writes).

        Raises:
            SizeMismatchError: the boxes were drawn on the other kind of media, or another size.
            And what `render_file` raises.
        """
        if output is None:
            raise ValueError("a render writes media: give an output path")
        kind = media_kind(source)
        if kind is not None and kind != self.media_type:
            raise SizeMismatchError(
                f"{source.name}: the detections are for {_a(self.media_type)}, the input is {_a(kind)}"
            )
        return render_file(source, output, self.boxes_by_frame, self.options, progress, self.size_wh, frames)

    def video_options(self) -> VideoOptions:
        """The options videos render with (`draw` applies to them too)."""
        return replace(self.options.video, draw=self.options.draw)


def _a(kind: MediaKind) -> str:
    return "a photo" if kind == "image" else "a video"


def _render_image(
    source: Path,
    output: Path,
    boxes: Detections,
    options: AnonymizeOptions,
    size_wh: tuple[int, int] | None,
) -> Report:
    loaded = read_image(source, max_pixels=options.max_pixels)
    height, width = loaded.frame_bgr.shape[:2]
    if size_wh is not None and tuple(size_wh) != (width, height):
        raise SizeMismatchError(
            f"{source.name}: the boxes were made for {size_wh[0]}x{size_wh[1]} pixels, the photo shows "
            f"{width}x{height}"
        )
    shown = as_reported(boxes).clipped(width, height)
    if options.draw:
        frame = draw_boxes(loaded.frame_bgr, shown)
    else:
        frame = obscure(loaded.frame_bgr, shown, options.styles)
    write_image(loaded, frame, output, keep_metadata=options.keep_metadata)
    report = Report(MediaInfo("image", width, height))
    report.add(0, 0.0, shown)
    return report
