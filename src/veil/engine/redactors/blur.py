"""Gaussian blur of one region, sized to the box so that a face cannot be recognised."""

from __future__ import annotations

import math

import cv2
import numpy as np

from veil.engine.redactors.mask import FrameBGR, MaskRegion
from veil.engine.redactors.style import ObscureStyle

__all__ = ["blurred_patch"]

# Above this sigma the neighbourhood is shrunk first and blurred small: a 60 px sigma costs the same
# as a 3 px one, which keeps many large faces on 1280x720 video cheap. The box filter of the shrink
# adds to the blur, so the result is at least as strong as asked.
_SIGMA_AFTER_SHRINK = 3.0
# Gaussian weights past three sigma are below 1 %, so that much neighbourhood is all the blur reads.
_SIGMAS_OF_CONTEXT = 3.0
_MIN_SIGMA = 1.0


def blurred_patch(frame_bgr: FrameBGR, region: MaskRegion, style: ObscureStyle) -> FrameBGR:
    """Blurs the region's neighbourhood and returns the blurred pixels of its ROI.

    Args:
        frame_bgr: (H, W, 3) uint8 frame; read only.
        region: the ROI to return; sigma is `style.blur_strength` times `region.short_side`.
        style: gives blur_strength.

    Returns:
        (roi.height, roi.width, 3) uint8 patch.
    """
    sigma = max(style.blur_strength * region.short_side, _MIN_SIGMA)
    height, width = frame_bgr.shape[:2]
    outer = region.roi.grown(math.ceil(_SIGMAS_OF_CONTEXT * sigma), (width, height))
    patch = frame_bgr[outer.slices]
    step = max(1, int(sigma // _SIGMA_AFTER_SHRINK))
    if step == 1:
        blurred = cv2.GaussianBlur(patch, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    else:
        small_wh = (max(1, math.ceil(outer.width / step)), max(1, math.ceil(outer.height / step)))
        small = cv2.resize(patch, small_wh, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / step, borderType=cv2.BORDER_REFLECT_101)
        blurred = cv2.resize(small, (outer.width, outer.height), interpolation=cv2.INTER_LINEAR)
    top, left = region.roi.y0 - outer.y0, region.roi.x0 - outer.x0
    inner = blurred[top : top + region.roi.height, left : left + region.roi.width]
    return np.ascontiguousarray(inner, dtype=np.uint8)
