"""The detector interface and the registry that finds detectors through entry points."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.errors import ModelError
from veil.engine.verifiers.base import Precision, VerifierInfo

__all__ = [
    "ENTRY_POINT_GROUP",
    "Detector",
    "DetectorConfig",
    "DetectorInfo",
    "available_detectors",
    "load_detector",
]

ENTRY_POINT_GROUP = "veil.detectors"

Device = Literal["auto", "cpu", "cuda"]
Purpose = Literal["photo", "video"]


@dataclass(frozen=True)
class DetectorConfig:
    """What every detector is built from.

    Attributes:
        device: "cpu", "cuda", or "auto" (CUDA when onnxruntime-gpu and a GPU are present).
        threshold: minimum score to keep a box; None keeps the detector's measured default.
        model_path: an ONNX file replacing the detector's shipped weights, where the detector allows it.
        int8: on the CPU, run the INT8 copy of the network that `veil models derive` made at install, where
            there is one (1.4-1.9x faster at equal recall, BENCHMARKS.md); False always runs the FP32 weights.
        purpose: "photo" favours recall on one large image; "video" trades input resolution for speed on
            every key frame, since tracking and the mask scale cover what a lower resolution blurs.
    """

    device: Device = "auto"
    threshold: float | None = None
    model_path: Path | None = None
    int8: bool = True
    purpose: Purpose = "photo"


@dataclass(frozen=True)
class DetectorInfo:
    """What `veil doctor` reports about a loaded detector.

    Attributes:
        name: the detector's name. labels: what it finds. model, package, license: its network, the
            installed distribution that ships the weights, and their licence. provider: ONNX Runtime's
            execution provider. precision: of the weights as run. verifier: the second model that
            confirms its boxes, if any.
    """

    name: str
    labels: tuple[str, ...]
    model: str
    package: str
    license: str
    provider: str
    precision: Precision = "FP32"
    verifier: VerifierInfo | None = None


@runtime_checkable
class Detector(Protocol):
    """Finds boxes in one BGR uint8 frame of shape (H, W, 3)."""

    info: DetectorInfo

    def detect(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections: ...


class DetectorFactory(Protocol):
    def __call__(self, config: DetectorConfig) -> Detector: ...


def available_detectors() -> list[str]:
    """Names registered under the `veil.detectors` entry point group, sorted."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_detector(name: str, config: DetectorConfig) -> Detector:
    """Builds the detector registered as `name`.

    Raises:
        ModelError: no detector has that name, or it cannot be built.
    """
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = ", ".join(available_detectors()) or "none"
        raise ModelError(f"no detector named {name!r} is installed (installed: {known})")
    factory: DetectorFactory = found[0].load()
    return factory(config)
