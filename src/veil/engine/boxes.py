"""Box geometry shared by detectors, the tracker and the benchmarks. Boxes are xyxy float pixels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["box_area", "box_intersection", "box_iou"]

FloatArray = npt.NDArray[np.float32]


def box_area(xyxy: npt.ArrayLike) -> FloatArray:
    """(N,) areas of (N, 4) boxes; inverted boxes count as empty."""
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return np.asarray(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1), np.float32)


def box_intersection(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """(N, M) overlap areas between (N, 4) boxes `a` and (M, 4) boxes `b`."""
    first = np.asarray(a, np.float32).reshape(-1, 4)
    second = np.asarray(b, np.float32).reshape(-1, 4)
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    return np.asarray(np.prod(np.clip(bottom_right - top_left, 0, None), axis=2), np.float32)


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """(N, M) intersection over union of (N, 4) boxes `a` and (M, 4) boxes `b`; 0 where both are empty."""
    inter = box_intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0), np.float32)
