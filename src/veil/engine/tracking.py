"""Tracking between detection frames: link boxes into tracks, coast missed ones, fill the frames between.

Detection runs on key frames (every N-th frame and the last one). `KeyframeTracker.update` links each key
frame's raw detections to the tracks alive before it and returns them with track ids, plus a grown
"tracked" box for every track the detector missed this time but that is still alive. `fill_between` then
gives the boxes of any frame between two key frames. Raw detections are never dropped or changed, and
every call returns new objects (see STYLE.md, "Three things not to copy" #1).

All boxes are xyxy float32 pixels of one frame orientation; frame positions are frame indices.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from veil.engine.boxes import box_iou
from veil.engine.detections import SOURCE_DETECTED, SOURCE_TRACKED, Detections

__all__ = ["KeyframeTracker", "TrackerConfig", "fill_between"]

Box = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TrackerConfig:
    """How detections are linked and how long missed objects stay covered.

    Attributes:
        match_iou: a detection continues a track when its IoU with the track's predicted box is at least this.
        max_centre_shift: ... or when its centre is within this many diagonals of the predicted box's centre
            (fast objects seen a stride apart may not overlap at all).
        max_misses: key frames in a row a track may go undetected before it ends; while alive it keeps a
            "tracked" box, so a face the detector misses for a moment stays covered.
        coast_grow: while coasting, the box grows by this fraction of its size per missed key frame, on top of
            covering both where it was and where its last velocity would take it.
    """

    match_iou: float = 0.1
    max_centre_shift: float = 1.5
    max_misses: int = 2
    coast_grow: float = 0.1


@dataclass
class _Track:
    track_id: int
    label: str
    box: Box  # last detected box
    frame_index: int  # key frame of the last detection
    confidence: float
    velocity: Box = field(default_factory=lambda: np.zeros(4, np.float32))  # xyxy pixels per frame
    misses: int = 0

    def predict(self, frame_index: int) -> Box:
        return np.asarray(self.box + self.velocity * (frame_index - self.frame_index), np.float32)

    def coasted(self, frame_index: int, grow: float) -> Box:
        """Covers both the last box and where its velocity leads, grown by `grow` of its size per miss."""
        ahead = self.predict(frame_index)
        union = np.concatenate([np.minimum(self.box[:2], ahead[:2]), np.maximum(self.box[2:], ahead[2:])])
        pad = np.tile((union[2:] - union[:2]) * grow * self.misses / 2, 2)
        return np.asarray(union + pad * np.array([-1, -1, 1, 1], np.float32), np.float32)


class KeyframeTracker:
    """Links the detections of successive key frames into tracks (greedy IoU / centre-distance matching)."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(
        self, frame_index: int, detections: Detections, looked_for: Collection[str] | None = None
    ) -> Detections:
        """Takes the raw detections of one key frame.

        Args:
            frame_index: index of the key frame; increases from call to call.
            detections: every box the detectors found in it; not modified.
            looked_for: labels the detectors searched for on this frame; None = all. A track of another label
                is carried over unmissed, at the box its velocity predicts, to be matched on a later frame.

        Returns:
            New detections: every input box, in input order, with a track id and source "detected"; then a
            "tracked" box (see `TrackerConfig.coast_grow`) for each live track with no detection this time.
        """
        searched = (lambda label: True) if looked_for is None else set(looked_for).__contains__
        pairs = self._match(frame_index, detections)
        matched_tracks = {t for t, _ in pairs}
        track_ids = np.full(len(detections), -1, np.int64)
        for t, d in pairs:
            self._hit(self._tracks[t], frame_index, detections, d)
            track_ids[d] = self._tracks[t].track_id
        coasting: list[_Track] = []
        for index, track in enumerate(self._tracks):
            if index not in matched_tracks:
                track.misses += 1 if searched(track.label) else 0
                if track.misses <= self.config.max_misses:
                    coasting.append(track)
        unmatched = [int(d) for d in np.flatnonzero(track_ids < 0)]
        new_tracks = [self._new_track(frame_index, detections, d) for d in unmatched]
        for track, d in zip(new_tracks, unmatched, strict=True):
            track_ids[d] = track.track_id
        self._tracks = [self._tracks[t] for t, _ in pairs] + coasting + new_tracks
        source = np.full(len(detections), SOURCE_DETECTED, "<U8")
        found = Detections(detections.xyxy, detections.confidence, detections.label, track_ids, source)
        coasted = [
            (t.coasted(frame_index, self.config.coast_grow), t.confidence, t.label, t.track_id)
            for t in coasting
        ]
        return Detections.merge([found, _rows_to_detections(coasted)])

    def _match(self, frame_index: int, detections: Detections) -> list[tuple[int, int]]:
        """Greedy one-to-one (track, detection) pairs of the same label, best IoU first, then nearest."""
        candidates: list[tuple[float, int, int]] = []
        for t, track in enumerate(self._tracks):
            predicted = track.predict(frame_index)
            for d in (int(i) for i in np.flatnonzero(detections.label == track.label)):
                overlap = float(box_iou(predicted, detections.xyxy[d])[0, 0])
                shift = _centre_shift(predicted, detections.xyxy[d])
                if overlap >= self.config.match_iou or shift <= self.config.max_centre_shift:
                    # Any overlap ranks above every non-overlapping candidate.
                    candidates.append((overlap if overlap > 0 else -shift, t, d))
        pairs: list[tuple[int, int]] = []
        used_tracks: set[int] = set()
        used_detections: set[int] = set()
        for _, t, d in sorted(candidates, key=lambda c: -c[0]):
            if t not in used_tracks and d not in used_detections:
                pairs.append((t, d))
                used_tracks.add(t)
                used_detections.add(d)
        return pairs

    def _hit(self, track: _Track, frame_index: int, detections: Detections, row: int) -> None:
        box = detections.xyxy[row].copy()
        elapsed = frame_index - track.frame_index
        if elapsed > 0:
            track.velocity = np.asarray((box - track.box) / elapsed, np.float32)
        track.box, track.frame_index = box, frame_index
        track.confidence, track.misses = float(detections.confidence[row]), 0

    def _new_track(self, frame_index: int, detections: Detections, row: int) -> _Track:
        track = _Track(
            self._next_id,
            str(detections.label[row]),
            detections.xyxy[row].copy(),
            frame_index,
            float(detections.confidence[row]),
        )
        self._next_id += 1
        return track


def fill_between(before: Detections, after: Detections, fraction: float) -> Detections:
    """Boxes for a frame between two key frames, all with source "tracked".

    Args:
        before: what `KeyframeTracker.update` returned for the key frame before.
        after: what it returned for the key frame after.
        fraction: position of the frame between them, 0 < fraction < 1.

    Returns:
        A track in both: its box moved linearly from one to the other. A track only in `before` (it ended):
        its last box held. A track only in `after` (it started): its first box, because the object was
        probably already there, partly hidden or too small, before the detector first found it.
    """
    rows: list[tuple[Box, float, str, int]] = []
    later = {int(t): i for i, t in enumerate(after.track_id) if t >= 0}
    seen: set[int] = set()
    for i, track_id in enumerate(before.track_id.tolist()):
        j = later.get(track_id)
        box = before.xyxy[i] if j is None else before.xyxy[i] + (after.xyxy[j] - before.xyxy[i]) * fraction
        rows.append((box, float(before.confidence[i]), str(before.label[i]), track_id))
        seen.add(track_id)
    for j, track_id in enumerate(after.track_id.tolist()):
        if track_id not in seen:
            rows.append((after.xyxy[j], float(after.confidence[j]), str(after.label[j]), track_id))
    return _rows_to_detections(rows)


def _rows_to_detections(rows: list[tuple[Box, float, str, int]]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections(
        np.stack([r[0] for r in rows]).astype(np.float32),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[2] for r in rows], "<U16"),
        np.array([r[3] for r in rows], np.int64),
        np.full(len(rows), SOURCE_TRACKED, "<U8"),
    )


def _centre_shift(a: Box, b: Box) -> float:
    """Distance between the centres of a and b, in diagonals of a."""
    diagonal = float(np.hypot(a[2] - a[0], a[3] - a[1]))
    distance = float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2))
    return distance / diagonal if diagonal > 0 else float("inf")
