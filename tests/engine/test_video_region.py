"""Editing one region of a decoded yuv420p frame without touching the rest."""

from __future__ import annotations

import av
import numpy as np
import pytest

from veil.engine.media.video import edit_region


def _frame(pix_fmt: str = "yuv420p") -> av.VideoFrame:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=pix_fmt)
    frame.pts = 7
    return frame


def test_only_the_widened_region_changes_and_timing_is_kept() -> None:
    frame = _frame()
    calls: list[tuple[tuple[int, ...], tuple[int, int]]] = []

    def blacken(part: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        calls.append((part.shape, origin))
        return np.zeros_like(part)

    out = edit_region(frame, (31, 21, 70, 60), blacken)
    assert out is not None and out.pts == 7
    assert calls == [((40, 40, 3), (30, 20))]  # widened to even coordinates
    before, after = frame.to_ndarray(), out.to_ndarray()
    luma_before, luma_after = before[:120], after[:120]
    assert (luma_after[20:60, 30:70] <= 17).all()  # black in limited-range luma
    outside = np.ones((120, 160), bool)
    outside[20:60, 30:70] = False
    assert np.array_equal(luma_after[outside], luma_before[outside])
    assert not np.array_equal(before[120:], after[120:])  # chroma under the region changed too
    np.testing.assert_array_equal(before[120:125, 100:], after[120:125, 100:])


@pytest.mark.parametrize(
    ("pix_fmt", "roi"),
    [("yuv444p", (0, 0, 10, 10)), ("yuv420p", (50, 50, 50, 80))],
)
def test_other_formats_and_empty_regions_are_declined(pix_fmt: str, roi: tuple[int, int, int, int]) -> None:
    assert edit_region(_frame(pix_fmt), roi, lambda part, origin: part) is None
