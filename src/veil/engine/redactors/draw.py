"""Outlines of boxes with label and score, for checking what was found (`--draw`)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from veil.engine.detections import SOURCE_TRACKED, Detections
from veil.engine.redactors.mask import FrameBGR

__all__ = ["draw_boxes"]

_COLOURS_BGR: dict[str, tuple[int, int, int]] = {"face": (0, 200, 0), "plate": (0, 140, 255)}
_OTHER_COLOUR_BGR = (255, 200, 0)
_TEXT_BGR = (0, 0, 0)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_boxes(frame_bgr: FrameBGR, detections: Detections) -> FrameBGR:
    """Draws each box with a caption such as "face 0.87 #3 tracked" on a copy of the frame.

    Args:
        frame_bgr: (H, W, 3) uint8 frame; not modified.
        detections: boxes in the frame's pixels; parts outside the frame are clipped away and boxes
            with no area left are skipped.

    Returns:
        A new (H, W, 3) uint8 frame. Colours: faces green, plates orange, other labels blue.
    """
    out = np.ascontiguousarray(frame_bgr).copy()
    height, width = out.shape[:2]
    finite = np.asarray(np.isfinite(detections.xyxy).all(axis=1), np.bool_)
    shown = detections[finite].clipped(width, height)
    # Lines and text grow with the frame so they stay readable on 4K and do not swamp thumbnails.
    thickness = max(1, round(min(width, height) / 400))
    for i in range(len(shown)):
        x0, y0, x1, y1 = (round(float(v)) for v in shown.xyxy[i])
        colour = _COLOURS_BGR.get(str(shown.label[i]), _OTHER_COLOUR_BGR)
        cv2.rectangle(out, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, thickness)
        _draw_caption(out, _caption(shown, i), (x0, y0), colour, thickness)
    return out


def _caption(detections: Detections, index: int) -> str:
    text = f"{detections.label[index]} {float(detections.confidence[index]):.2f}"
    if detections.track_id[index] >= 0:
        text += f" #{int(detections.track_id[index])}"
    if detections.source[index] == SOURCE_TRACKED:
        text += " tracked"
    return text


def _draw_caption(
    out: FrameBGR, text: str, corner_xy: tuple[int, int], colour: tuple[int, int, int], thickness: int
) -> None:
    """Writes text on a filled label above the box's top-left corner, or just inside it at the frame top."""
    scale = 0.4 * thickness
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x0, y0 = corner_xy
    label_h = text_h + baseline + 2 * thickness
    top = y0 - label_h if y0 - label_h >= 0 else y0
    cv2.rectangle(out, (x0, top), (x0 + text_w + 2 * thickness, top + label_h), colour, cv2.FILLED)
    text_origin = (x0 + thickness, top + label_h - baseline - thickness)
    cv2.putText(
        out, text, text_origin, _FONT, scale, _TEXT_BGR, max(1, math.ceil(thickness / 2)), cv2.LINE_AA
    )
