"""Obscuring of detected regions (blur, pixelate, fill) and drawing of boxes for checking.

Both public functions take an (H, W, 3) uint8 BGR frame and return a new one; the input is never
modified. Work is done per box on its region of interest, never on the whole frame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from veil.engine.detections import Detections
from veil.engine.redactors.blur import blurred_patch
from veil.engine.redactors.draw import draw_boxes
from veil.engine.redactors.fill import filled_patch
from veil.engine.redactors.mask import FrameBGR, MaskRegion, blend, mask_region
from veil.engine.redactors.pixelate import pixelated_patch
from veil.engine.redactors.style import (
    DEFAULT_STYLES,
    ObscureStyle,
    Shape,
    StyleMethod,
    StylesByLabel,
)

__all__ = [
    "DEFAULT_STYLES",
    "FrameBGR",
    "ObscureStyle",
    "Shape",
    "StyleMethod",
    "StylesByLabel",
    "draw_boxes",
    "obscure",
]

Effect = Callable[[FrameBGR, MaskRegion, ObscureStyle], FrameBGR]

_EFFECTS: dict[StyleMethod, Effect] = {
    "blur": blurred_patch,
    "pixelate": pixelated_patch,
    "fill": filled_patch,
}


def obscure(frame_bgr: FrameBGR, detections: Detections, styles: StylesByLabel = DEFAULT_STYLES) -> FrameBGR:
    """Obscures every box with the style of its label.

    Args:
        frame_bgr: (H, W, 3) uint8 BGR frame; not modified.
        detections: boxes in the frame's pixels (xyxy). Parts outside the frame are clipped; boxes with
            no area or non-finite corners are skipped. Labels without a style of their own get
            `styles.default`, so no box is ever left visible for want of a style.
        styles: method, shape, mask scale and soft edge per label.

    Returns:
        A new (H, W, 3) uint8 frame. Pixels outside every scaled mask are byte-identical to the input, and
        the same boxes in any order give the same frame.

    Raises:
        ValueError: the frame is not (H, W, 3) uint8.
    """
    _check_frame(frame_bgr)
    out = frame_bgr.copy()
    height, width = out.shape[:2]
    # Each effect reads the pixels the boxes before it obscured, so the order is fixed here (by label,
    # then corners), not left to whoever listed the boxes: a document read back from an annotation
    # format lists a frame's boxes in another order and must render to the same frame.
    order = np.lexsort((*detections.xyxy.T[::-1], detections.label))
    for box_xyxy, label in zip(detections.xyxy[order], detections.label[order], strict=True):
        style = styles.for_label(str(label))
        region = mask_region(box_xyxy, style, (width, height))
        if region is None:
            continue
        # Effects read the frame obscured so far, so overlapping boxes only ever add obscuring.
        effect = _EFFECTS[style.method](out, region, style)
        out[region.roi.slices] = blend(out[region.roi.slices], effect, region.alpha)
    return out


def _check_frame(frame_bgr: FrameBGR) -> None:
    if frame_bgr.dtype != np.uint8 or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame_bgr.shape} {frame_bgr.dtype}")
