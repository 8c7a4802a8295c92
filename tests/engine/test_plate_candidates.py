"""Plate stage 1: text lines from the DB map, and the loose shape rules that make them candidates."""

from __future__ import annotations

import numpy as np
import pytest

from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.plates.candidates import LineShape, TextLineFinder, TextLines, text_lines


def lines(*rects: tuple[float, float, float, float, float]) -> TextLines:
    return TextLines(np.array(rects, np.float32).reshape(-1, 5), np.full(len(rects), 0.9, np.float32))


def test_text_lines_unclips_like_pp_ocr() -> None:
    """GIVEN a map with one 40x10 block of text WHEN lines are read THEN the block grows by
    area * 1.5 / perimeter on every side, and its score is the mean probability inside it (the
    dilated rim of zeros included, as in PP-OCR)."""
    prob_map = np.zeros((64, 128), np.float32)
    prob_map[20:30, 30:70] = 0.9

    found = text_lines(prob_map, pixel_threshold=0.3, unclip_ratio=1.5, min_score=0.5)

    assert len(found) == 1
    # Dilation makes the block 41x11 pixels; its contour runs through pixel centres, so 40x10.
    grow = 2 * (40 * 10 * 1.5 / (2 * (40 + 10)))
    long_side, short_side = max(found.rects[0, 2:4]), min(found.rects[0, 2:4])
    assert long_side == pytest.approx(40 + grow, abs=0.5)
    assert short_side == pytest.approx(10 + grow, abs=0.5)
    assert 0.7 <= found.scores[0] <= 0.9


@pytest.mark.parametrize(
    ("rect", "accepted"),
    [
        pytest.param((500, 300, 120, 40, 0), True, id="us-plate-3:1"),
        pytest.param((500, 300, 300, 30, 0), True, id="eu-plate-10:1"),
        pytest.param((500, 300, 40, 400, -90), True, id="long-line-reported-upright"),
        pytest.param((500, 300, 60, 50, 45), True, id="two-line-block-any-angle"),
        pytest.param((500, 300, 130, 10, 0), False, id="13:1-a-sentence"),
        pytest.param((500, 300, 40, 200, 0), False, id="vertical-line"),
        pytest.param((500, 300, 120, 40, 40), False, id="line-tilted-40-degrees"),
        pytest.param((500, 300, 12, 3, 0), False, id="under-0.4%-of-the-frame"),
        pytest.param((500, 300, 900, 300, 0), False, id="over-20%-of-the-frame"),
    ],
)
def test_line_shape_accepts_plate_proportions(rect: tuple[float, ...], accepted: bool) -> None:
    assert LineShape().accepts(lines(rect), frame_long_side=1280).tolist() == [accepted]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("block", "kept"),
    [
        pytest.param((slice(20, 30), slice(30, 70)), 1, id="plate-like-4:1"),
        pytest.param((slice(30, 32), slice(4, 124)), 0, id="thin-rule-not-text"),
    ],
)
def test_lines_from_map_are_in_frame_pixels(block: tuple[slice, slice], kept: int) -> None:
    """GIVEN a map made at half the frame's size WHEN lines are read THEN they come back at frame scale."""
    finder = TextLineFinder(DetectorConfig(device="cpu"), max_side=128, threads=1)
    prob_map = np.zeros((64, 128), np.float32)
    prob_map[block] = 0.9

    found = finder.lines_from_map(prob_map, scale=0.5, frame_long_side=256)

    assert len(found) == kept
    if kept:
        assert found.rects[0, :2] == pytest.approx((100, 49), abs=1.5)
        assert max(found.rects[0, 2:4]) > 80
