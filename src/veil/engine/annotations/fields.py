"""A box's score, source and track id as named attributes, the same in every format that has a place for
them: "score" (0 to 1), "source" ("detected" or "tracked") and "track_id" (absent when the box has none)."""

from __future__ import annotations

from typing import Any, TypedDict

from veil.engine.detections import Detections
from veil.engine.errors import AnnotationContentError

__all__ = ["ATTRIBUTES", "BoxAttributes", "box_attributes", "read_attributes"]

ATTRIBUTES = ("score", "source", "track_id")


class BoxAttributes(TypedDict, total=False):
    score: float
    source: str
    track_id: int


def box_attributes(boxes: Detections, row: int) -> dict[str, Any]:
    """The attributes of one box, score rounded as the detections document rounds it."""
    attributes: dict[str, Any] = {
        "score": round(float(boxes.confidence[row]), 4),
        "source": str(boxes.source[row]),
    }
    track = int(boxes.track_id[row])
    if track >= 0:
        attributes["track_id"] = track
    return attributes


def read_attributes(attributes: Any, where: str = "") -> BoxAttributes:
    """Score, source and track id from a format's attributes (numbers or their text); others are ignored.

    A box a person drew has none of them: it reads as score 1, "detected", no track.

    Raises:
        AnnotationContentError: one of them is there but not a number (score, track id).
    """
    if not isinstance(attributes, dict):
        return {}
    found: BoxAttributes = {}
    try:
        if attributes.get("score") not in (None, ""):
            found["score"] = float(attributes["score"])
        if attributes.get("source") not in (None, ""):
            found["source"] = str(attributes["source"])
        if attributes.get("track_id") not in (None, ""):
            found["track_id"] = int(float(attributes["track_id"]))
    except (TypeError, ValueError) as exc:
        raise AnnotationContentError(f"{where}attribute score or track_id is not a number ({exc})") from exc
    return found
