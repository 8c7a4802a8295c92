from __future__ import annotations

import numpy as np
import pytest

from veil.engine.boxes import box_area, box_intersection, box_iou


@pytest.mark.parametrize(
    ("a", "b", "iou"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),
    ],
)
def test_iou_of_pairs(a: list[float], b: list[float], iou: float) -> None:
    assert box_iou([a], [b])[0, 0] == pytest.approx(iou)


def test_matrix_shapes_and_areas() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4]], np.float32)
    b = np.array([[0, 0, 2, 2], [5, 5, 6, 6], [10, 0, 5, 5]], np.float32)
    assert box_iou(a, b).shape == (2, 3)
    assert box_intersection(a, b)[0].tolist() == [4, 1, 0]
    assert box_area(b).tolist() == [4, 1, 0]  # an inverted box is empty
    assert box_iou(np.empty((0, 4)), b).shape == (0, 3)
