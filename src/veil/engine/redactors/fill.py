"""Solid-colour fill of one region."""

from __future__ import annotations

import numpy as np

from veil.engine.redactors.mask import FrameBGR, MaskRegion
from veil.engine.redactors.style import ObscureStyle

__all__ = ["filled_patch"]


def filled_patch(frame_bgr: FrameBGR, region: MaskRegion, style: ObscureStyle) -> FrameBGR:
    """Returns a (roi.height, roi.width, 3) uint8 patch of `style.color_bgr`; the frame is not read.

    The frame argument keeps the signature shared with the other effects.
    """
    del frame_bgr
    patch = np.empty((region.roi.height, region.roi.width, 3), np.uint8)
    patch[:] = np.asarray(style.color_bgr, np.uint8)
    return patch
