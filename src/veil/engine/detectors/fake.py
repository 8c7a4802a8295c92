"""A detector that returns scripted boxes, so tests run without weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorInfo

__all__ = ["FakeDetector"]

Script = Callable[[int, npt.NDArray[np.uint8]], Detections]


class FakeDetector:
    """Returns the same boxes for every frame, or what `script(call_index, frame)` returns."""

    def __init__(self, boxes: Detections | None = None, script: Script | None = None) -> None:
        self._boxes = boxes if boxes is not None else Detections.empty()
        self._script = script
        self.calls = 0
        self.info = DetectorInfo("fake", ("face", "plate"), "scripted", "veil", "MIT", "none")

    def detect(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections:
        index = self.calls
        self.calls += 1
        if self._script is not None:
            return self._script(index, frame_bgr)
        return self._boxes
