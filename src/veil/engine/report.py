"""The `veil.detections/1` document: what was found and obscured in one photo or video."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from veil.engine.detections import Detections

__all__ = ["BOX_DECIMALS", "SCHEMA", "FrameDetections", "MediaInfo", "Report", "as_reported"]

SCHEMA = "veil.detections/1"
BOX_DECIMALS = 1
"""Box corners are written to a tenth of a pixel."""
_SCORE_DECIMALS = 4


@dataclass(frozen=True)
class MediaInfo:
    """Size and timing of the output media; fps, frame_count and duration are None for images."""

    type: Literal["image", "video"]
    width: int
    height: int
    fps: float | None = None
    frame_count: int | None = None
    duration: float | None = None


@dataclass(frozen=True)
class FrameDetections:
    """Every box obscured in one frame; `time` is seconds from the start of the stream."""

    index: int
    time: float
    detections: Detections


@dataclass
class Report:
    """Detections of one media file, frames in order; frames with no box are left out."""

    media: MediaInfo
    frames: list[FrameDetections] = field(default_factory=list)

    def add(self, index: int, time: float, detections: Detections) -> None:
        if len(detections):
            self.frames.append(FrameDetections(index, time, detections))

    def counts_by_label(self) -> dict[str, int]:
        """Boxes per label, a tracked face counted once per track on video and once per box on photos."""
        counts: dict[str, set[tuple[int, int]]] = {}
        for frame in self.frames:
            d = frame.detections
            for row, (label, track) in enumerate(zip(d.label.tolist(), d.track_id.tolist(), strict=True)):
                key = (-1, track) if track >= 0 else (frame.index, row)
                counts.setdefault(label, set()).add(key)
        return {label: len(keys) for label, keys in sorted(counts.items())}

    def to_dict(self) -> dict[str, Any]:
        """The `veil.detections/1` document as a dict of JSON types."""
        media = {k: v for k, v in self.media.__dict__.items()}
        return {"schema": SCHEMA, "media": media, "frames": [_frame_json(f) for f in self.frames]}

    def to_json(self, indent: int | None = None) -> str:
        """The `veil.detections/1` document as JSON text: compact, or indented by `indent` spaces."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, separators=separators)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Report:
        """The report a `to_dict` document describes (boxes and scores as rounded there).

        Raises:
            KeyError, TypeError, ValueError: `document` is not a `veil.detections/1` document.
        """
        if document.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} document")
        report = cls(MediaInfo(**document["media"]))
        for frame in document["frames"]:
            report.add(frame["index"], frame["time"], _detections_from_json(frame["detections"]))
        return report


def as_reported(detections: Detections) -> Detections:
    """The boxes as a document holds them (corners to BOX_DECIMALS, scores to 4 decimals). The pipelines
    obscure these, not the detectors' finer corners, so that rendering a report again gives the pixels the
    first run gave: a mask a hundredth of a pixel wider changes a frame, and the encoder carries the change
    on through the frames that follow."""
    return Detections(
        np.round(detections.xyxy.astype(np.float64), BOX_DECIMALS).astype(np.float32),
        np.round(detections.confidence.astype(np.float64), _SCORE_DECIMALS).astype(np.float32),
        detections.label,
        detections.track_id,
        detections.source,
    )


def _frame_json(frame: FrameDetections) -> dict[str, Any]:
    d = frame.detections
    boxes = [
        {
            "label": str(d.label[i]),
            "score": round(float(d.confidence[i]), _SCORE_DECIMALS),
            "box": [round(float(v), BOX_DECIMALS) for v in d.xyxy[i]],
            "track_id": int(d.track_id[i]) if d.track_id[i] >= 0 else None,
            "source": str(d.source[i]),
        }
        for i in range(len(d))
    ]
    return {"index": frame.index, "time": round(frame.time, 6), "detections": boxes}


def _detections_from_json(boxes: list[dict[str, Any]]) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections(
        np.array([b["box"] for b in boxes], np.float32),
        np.array([b["score"] for b in boxes], np.float32),
        np.array([b["label"] for b in boxes]),
        np.array([-1 if b["track_id"] is None else b["track_id"] for b in boxes], np.int64),
        np.array([b["source"] for b in boxes]),
    )
