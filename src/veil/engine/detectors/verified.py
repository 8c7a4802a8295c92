"""A detector whose weak boxes a second model must confirm: recall from a low threshold, fewer false boxes.

A detector run at a threshold low enough to find nearly every face or plate also finds things that are not.
Its strong boxes are kept as they are; the ones scoring under `check_below` are shown to a verifier
(`veil.engine.verifiers`), which was trained on something else and so errs elsewhere, and only those it
confirms are kept.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector
from veil.engine.verifiers.base import Verifier

__all__ = ["VerifiedDetector"]


class VerifiedDetector:
    """Runs `detector`, and keeps its boxes scoring under `check_below` only where `verifier` agrees.

    Args:
        detector: proposes boxes; its threshold sets what can be found at all.
        verifier: asked about the weak boxes only, all of a frame's at once.
        check_below: boxes scoring at least this are kept unasked.
    """

    def __init__(self, detector: Detector, verifier: Verifier, check_below: float) -> None:
        self.detector = detector
        self.verifier = verifier
        self.check_below = check_below
        self.info = replace(detector.info, verifier=verifier.info)

    def detect(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections:
        """The detector's strong or confirmed boxes in `frame_bgr` (H, W, 3 uint8 BGR), in its order."""
        found = self.detector.detect(frame_bgr)
        weak = found.confidence < self.check_below
        if not weak.any():
            return found
        kept = ~weak
        kept[weak] = self.verifier.keep(frame_bgr, found[weak])
        return found[kept]
