"""Pixelation of one region into blocks sized to the box."""

from __future__ import annotations

import math

import cv2
import numpy as np

from veil.engine.redactors.mask import FrameBGR, MaskRegion
from veil.engine.redactors.style import ObscureStyle

__all__ = ["pixelated_patch"]

# One-pixel blocks would leave the region unchanged; two is the least that still hides detail.
_MIN_BLOCK_PX = 2.0


def pixelated_patch(frame_bgr: FrameBGR, region: MaskRegion, style: ObscureStyle) -> FrameBGR:
    """Averages the region's ROI over square blocks.

    Args:
        frame_bgr: (H, W, 3) uint8 frame; read only.
        region: the ROI; blocks are `region.short_side / style.pixel_blocks` pixels wide, so the box's
            shorter side spans about `pixel_blocks` blocks.
        style: gives pixel_blocks.

    Returns:
        (roi.height, roi.width, 3) uint8 patch, each block one flat colour (the block's mean).
    """
    roi = region.roi
    block = max(region.short_side / max(style.pixel_blocks, 1), _MIN_BLOCK_PX)
    small_wh = (max(1, math.ceil(roi.width / block)), max(1, math.ceil(roi.height / block)))
    small = cv2.resize(frame_bgr[roi.slices], small_wh, interpolation=cv2.INTER_AREA)
    blocks = cv2.resize(small, (roi.width, roi.height), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(blocks, dtype=np.uint8)
