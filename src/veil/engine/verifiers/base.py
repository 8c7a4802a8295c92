"""The verifier interface: a second model that confirms or rejects the boxes a detector proposed.

A detector tuned for recall proposes more boxes than there are faces or plates; a verifier, trained on
something else (reading text, a face classifier), keeps the ones it can confirm. Any detector can use one,
through `veil.engine.detectors.verified.VerifiedDetector` or inside its own pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections

__all__ = ["Precision", "Verifier", "VerifierInfo"]

Precision = Literal["FP32", "INT8"]


@dataclass(frozen=True)
class VerifierInfo:
    """What `veil doctor` reports about a loaded verifier."""

    name: str
    model: str
    package: str
    license: str
    precision: Precision


@runtime_checkable
class Verifier(Protocol):
    """Decides which candidate boxes in one BGR uint8 frame of shape (H, W, 3) are what they claim."""

    info: VerifierInfo

    def keep(self, frame_bgr: npt.NDArray[np.uint8], candidates: Detections) -> npt.NDArray[np.bool_]:
        """(N,) True for each of the N candidates (xyxy, frame pixels) the verifier confirms."""
        ...
