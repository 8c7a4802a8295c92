"""Plate stage 2: a text line grows by its own proportions into the upright box of its plate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from veil.engine.detectors.plates.candidates import TextLines
from veil.engine.detectors.plates.outline import PlateOutline


def one_line(cx: float, cy: float, w: float, h: float, angle: float) -> TextLines:
    return TextLines(np.array([[cx, cy, w, h, angle]], np.float32), np.array([0.9], np.float32))


@pytest.mark.parametrize(
    ("rect", "expected_wh"),
    [
        pytest.param((400, 200, 100, 20, 0), (110, 26), id="horizontal-line"),
        pytest.param((400, 200, 20, 100, -90), (110, 26), id="same-line-reported-upright"),
        pytest.param((400, 200, 300, 30, 0), (330, 39), id="long-eu-line-stays-long"),
    ],
)
def test_line_grows_by_its_own_proportions(rect: tuple[float, ...], expected_wh: tuple[float, float]) -> None:
    (x0, y0, x1, y1) = PlateOutline().boxes(one_line(*rect))[0]

    assert (x1 - x0, y1 - y0) == pytest.approx(expected_wh, abs=0.01)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((400, 200))


def test_tilted_line_box_holds_the_rotated_plate() -> None:
    line = one_line(400, 200, 100, 20, 15)
    (x0, y0, x1, y1) = PlateOutline().boxes(line)[0]

    plate_corners = cv2.boxPoints(((400, 200), (110, 26), 15))

    assert (plate_corners[:, 0] >= x0 - 0.01).all() and (plate_corners[:, 0] <= x1 + 0.01).all()
    assert (plate_corners[:, 1] >= y0 - 0.01).all() and (plate_corners[:, 1] <= y1 + 0.01).all()


def test_block_grows_from_its_upright_box() -> None:
    """A two-line plate is a near-square block whose minAreaRect angle is arbitrary: its upright box grows."""
    (x0, y0, x1, y1) = PlateOutline().boxes(one_line(400, 200, 60, 50, 45))[0]

    upright = np.ptp(cv2.boxPoints(((400, 200), (60, 50), 45)), axis=0)
    assert (x1 - x0, y1 - y0) == pytest.approx((upright[0] * 1.1, upright[1] * 1.3), rel=1e-4)


def test_no_lines_give_no_boxes() -> None:
    empty = TextLines(np.empty((0, 5), np.float32), np.empty(0, np.float32))

    assert PlateOutline().boxes(empty).shape == (0, 4)
