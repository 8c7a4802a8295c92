"""Detectors and options together: one object that anonymizes frames, photos and videos."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector, DetectorConfig, Purpose, load_detector
from veil.engine.errors import ModelError, UnsupportedMediaError
from veil.engine.media.image import DEFAULT_MAX_PIXELS, read_image, write_image
from veil.engine.media.kinds import media_kind
from veil.engine.redactors import draw_boxes, obscure
from veil.engine.redactors.style import DEFAULT_STYLES, StylesByLabel
from veil.engine.report import MediaInfo, Report, as_reported
from veil.engine.video import FrameRange, VideoOptions, anonymize_video

__all__ = ["DEFAULT_DETECTORS", "AnonymizeOptions", "Anonymizer", "Progress"]

DEFAULT_DETECTORS = ("face", "plate")

Frame = npt.NDArray[np.uint8]
Progress = Callable[[int, int | None], None]
"""Called with (frames done, frames in total or None when unknown)."""


@dataclass(frozen=True)
class AnonymizeOptions:
    """How found regions are obscured and how media is written.

    Attributes:
        styles: obscuring style per label.
        draw: outline boxes with label and score instead of obscuring them, for checking.
        keep_metadata: keep photo EXIF/XMP/IPTC (never GPS); colour profiles are always kept.
        max_pixels: photos with more pixels are refused (decompression bombs).
        video: encoder, audio and detection-stride settings for videos.
    """

    styles: StylesByLabel = DEFAULT_STYLES
    draw: bool = False
    keep_metadata: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    video: VideoOptions = field(default_factory=VideoOptions)


class Anonymizer:
    """Finds regions with every detector and obscures them in frames, photos and videos."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        options: AnonymizeOptions | None = None,
        video_detectors: Sequence[Detector] | None = None,
    ) -> None:
        """Keeps `detectors` for photos and single frames, `video_detectors` (default: the same) for the key
        frames of videos."""
        self.detectors = tuple(detectors)
        self.video_detectors = self.detectors if video_detectors is None else tuple(video_detectors)
        self.options = options or AnonymizeOptions()

    @classmethod
    def load(
        cls,
        names: Sequence[str] = DEFAULT_DETECTORS,
        config: DetectorConfig | None = None,
        options: AnonymizeOptions | None = None,
        model_paths: Mapping[str, Path] | None = None,
    ) -> Anonymizer:
        """Builds the named detectors (entry points of the `veil.detectors` group) with one config, once
        tuned for photos and once for video. `model_paths` maps a detector name to an ONNX file replacing
        its shipped weights.

        Raises:
            ModelError: a detector is unknown or its model cannot be loaded.
            ValueError: `config.model_path` is set; one file cannot replace every detector's weights.
        """
        config = config or DetectorConfig()
        if config.model_path is not None:
            raise ValueError("give model files per detector in model_paths, not in the shared config")
        models = dict(model_paths or {})
        unknown = set(models) - set(names)
        if unknown:
            raise ModelError(
                f"a model file is given for {', '.join(sorted(unknown))}, which is not among the detectors"
            )

        def build(purpose: Purpose) -> list[Detector]:
            return [
                load_detector(name, replace(config, purpose=purpose, model_path=models.get(name)))
                for name in names
            ]

        return cls(build("photo"), options, build("video"))

    def detect(self, frame_bgr: Frame) -> Detections:
        """Every detector's boxes on one BGR frame, clipped to it, with corners as reports hold them."""
        height, width = frame_bgr.shape[:2]
        # ONNX Runtime releases the GIL: the detectors run side by side (bench/photo_speed.py: +10%).
        with ThreadPoolExecutor(max(1, len(self.detectors)), thread_name_prefix="veil-detect") as pool:
            found = Detections.merge(
                list(pool.map(lambda detector: detector.detect(frame_bgr), self.detectors))
            )
        return as_reported(found).clipped(width, height)

    def render(self, frame_bgr: Frame, detections: Detections) -> Frame:
        """A new frame with the regions obscured, or outlined when drawing."""
        if self.options.draw:
            return draw_boxes(frame_bgr, detections)
        return obscure(frame_bgr, detections, self.options.styles)

    def anonymize_frame(self, frame_bgr: Frame) -> tuple[Frame, Detections]:
        """Detects and obscures on one BGR uint8 frame of shape (H, W, 3); the input is left unchanged."""
        detections = self.detect(frame_bgr)
        return self.render(frame_bgr, detections), detections

    def process_file(
        self,
        source: Path,
        output: Path | None,
        progress: Progress | None = None,
        frames: FrameRange | None = None,
    ) -> Report:
        """Anonymizes one photo or video into `output`, or only detects when `output` is None; `frames`
        takes one segment of a video (see `veil.engine.segments`).

        Raises:
            UnsupportedMediaError: the file is neither a photo nor a video Veil handles.
            MediaError: the file cannot be read.
        """
        kind = media_kind(source)
        if kind == "image":
            return self._process_image(source, output)
        if kind == "video":
            options = self.video_options()
            return anonymize_video(
                source, output, self.video_detectors, self.options.styles, options, progress, frames
            )
        raise UnsupportedMediaError(
            f"{source.suffix or 'no extension'}: not a photo or video type Veil handles"
        )

    def video_options(self) -> VideoOptions:
        """The options videos run with (`draw` applies to them too)."""
        return replace(self.options.video, draw=self.options.draw)

    def _process_image(self, source: Path, output: Path | None) -> Report:
        loaded = read_image(source, max_pixels=self.options.max_pixels)
        height, width = loaded.frame_bgr.shape[:2]
        report = Report(MediaInfo("image", width, height))
        if output is None:
            report.add(0, 0.0, self.detect(loaded.frame_bgr))
            return report
        frame, detections = self.anonymize_frame(loaded.frame_bgr)
        write_image(loaded, frame, output, keep_metadata=self.options.keep_metadata)
        report.add(0, 0.0, detections)
        return report
