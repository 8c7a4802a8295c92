"""The plate detector: candidate text lines grown to plate outlines, kept when they read like a plate."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector, DetectorConfig, DetectorInfo
from veil.engine.detectors.onnx import package_version
from veil.engine.detectors.plates.candidates import MODEL_PACKAGE, LineShape, TextLineFinder, TextLines
from veil.engine.detectors.plates.outline import PlateOutline
from veil.engine.detectors.verified import VerifiedDetector
from veil.engine.verifiers.plate_text import PlateTextVerifier

__all__ = ["MAX_SIDE", "PlateCandidates", "plate_detector"]

LABEL = "plate"
# Longer side the frame is resized to for the text network, photos and video key frames alike: on a panned
# clip of small plates, video at 960 px covered 0.67 of what the photo detector finds on every frame, at 1280
# px 0.83; the INT8 network at 1280 costs about what FP32 did at 960 (BENCHMARKS.md, "INT8 wired in").
MAX_SIDE = 1280
# Reading removes most false candidates, so lines need only a moderate text score (BENCHMARKS.md, issue 9).
DEFAULT_BOX_THRESHOLD = 0.4


def plate_detector(config: DetectorConfig, *, max_side: int | None = None, threads: int = 0) -> Detector:
    """Veil's plate detector: `PlateCandidates`, every one of them read by `PlateTextVerifier`.

    Raises:
        ModelError: a model file is missing or cannot be loaded.
    """
    candidates = PlateCandidates(config, max_side=max_side, threads=threads)
    return VerifiedDetector(
        candidates, PlateTextVerifier(config.device, threads=threads), check_below=math.inf
    )


class PlateCandidates:
    """Plate candidates in BGR frames: text lines of plate-like shape, grown to plate outlines, unread.

    Args:
        config: device, line score threshold (None keeps DEFAULT_BOX_THRESHOLD), an optional replacement
            text-detection model, and the purpose that picks the input size.
        max_side: longer side of the text network's input; None: MAX_SIDE.
        shape: which text lines are candidates.
        outline: how a line grows into a plate box.
        threads: ONNX Runtime intra-op threads; 0 lets it choose.

    Raises:
        ModelError: the model file is missing or cannot be loaded.
    """

    def __init__(
        self,
        config: DetectorConfig,
        *,
        max_side: int | None = None,
        shape: LineShape | None = None,
        outline: PlateOutline | None = None,
        threads: int = 0,
    ) -> None:
        self.lines = TextLineFinder(
            config,
            max_side=max_side or MAX_SIDE,
            box_threshold=config.threshold if config.threshold is not None else DEFAULT_BOX_THRESHOLD,
            shape=shape,
            threads=threads,
        )
        self.outline = outline or PlateOutline()
        self.info = DetectorInfo(
            name=LABEL,
            labels=(LABEL,),
            model="PP-OCRv6 text detection",
            package=f"{MODEL_PACKAGE} {package_version(MODEL_PACKAGE)}",
            license="Apache-2.0",
            provider=self.lines.provider,
            precision=self.lines.precision,
        )

    def detect(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Candidate plates in one (H, W, 3) uint8 BGR frame: xyxy boxes in frame pixels, labelled "plate"."""
        return self.plates(self.lines.find(frame_bgr), frame_bgr.shape[1], frame_bgr.shape[0])

    def plates(self, lines: TextLines, width: int, height: int) -> Detections:
        """The outlines of candidate lines, clipped to a width x height frame."""
        return Detections.from_boxes(self.outline.boxes(lines), lines.scores, LABEL).clipped(width, height)
