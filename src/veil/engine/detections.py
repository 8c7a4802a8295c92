"""The one type every detector, tracker, redactor and writer speaks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Detections"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

SOURCE_DETECTED = "detected"
SOURCE_TRACKED = "tracked"


@dataclass(frozen=True)
class Detections:
    """Boxes found in one frame, as parallel arrays.

    Attributes:
        xyxy: (N, 4) float32 boxes, pixels, top-left and bottom-right corners.
        confidence: (N,) float32 scores in [0, 1].
        label: (N,) str, e.g. "face" or "plate".
        track_id: (N,) int64; -1 where no track is assigned.
        source: (N,) str, "detected" where a model found the box in this frame, "tracked" where a
            tracker carried it from other frames.
    """

    xyxy: FloatArray
    confidence: FloatArray
    label: StrArray
    track_id: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    source: StrArray = field(default_factory=lambda: np.empty(0, "<U8"))

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        xyxy = np.asarray(self.xyxy, np.float32).reshape(n, 4)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", np.asarray(self.confidence, np.float32).reshape(n))
        object.__setattr__(self, "label", np.asarray(self.label, "<U16").reshape(n))
        track = self.track_id if len(self.track_id) else np.full(n, -1)
        object.__setattr__(self, "track_id", np.asarray(track, np.int64).reshape(n))
        source = self.source if len(self.source) else np.full(n, SOURCE_DETECTED)
        object.__setattr__(self, "source", np.asarray(source, "<U8").reshape(n))

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, "<U16"))

    @classmethod
    def from_boxes(cls, xyxy: npt.ArrayLike, confidence: npt.ArrayLike, label: str) -> Detections:
        """Builds detections that all share one label."""
        boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
        return cls(boxes, np.asarray(confidence, np.float32), np.full(len(boxes), label, "<U16"))

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.track_id for p in parts]),
            np.concatenate([p.source for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice) -> Detections:
        """Returns a new object holding the selected rows (boolean mask, indices or slice)."""
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.label[index],
            self.track_id[index],
            self.source[index],
        )

    def scaled(self, factor_x: float, factor_y: float) -> Detections:
        """Returns these boxes multiplied per axis, e.g. to map from a resized frame back to the original."""
        scale = np.array([factor_x, factor_y, factor_x, factor_y], np.float32)
        return Detections(self.xyxy * scale, self.confidence, self.label, self.track_id, self.source)

    def clipped(self, width: int, height: int) -> Detections:
        """Returns boxes clipped to a width x height frame, dropping those left with no area."""
        xyxy = self.xyxy.copy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        kept = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        clipped = Detections(xyxy, self.confidence, self.label, self.track_id, self.source)
        return clipped[kept]

    def with_labels(self, labels: frozenset[str]) -> Detections:
        return self[np.isin(self.label, list(labels))]
