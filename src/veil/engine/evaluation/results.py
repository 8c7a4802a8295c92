"""Veil's detections of labelled photos scored per label, per box height and per photo, with every miss.

Only labels that have at least one labelled box are scored: labels a person did not draw (plates in a set
of labelled faces) would otherwise count every true detection as unmatched. Their detections are counted
apart, as ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from veil.engine.detections import Detections
from veil.engine.errors import AnnotationContentError
from veil.engine.evaluation.scoring import IOU_MATCH, SIZE_BUCKETS, Bucket, Tally, height_bucket
from veil.engine.report import Report

__all__ = ["Evaluation", "ImageResult", "Miss", "score_reports"]

ALL = "all"


@dataclass(frozen=True)
class Miss:
    """A labelled box no detection claimed: the photo, the label, xyxy pixels and its height bucket."""

    image: str
    label: str
    xyxy: tuple[float, float, float, float]
    bucket: str

    @property
    def height(self) -> float:
        return self.xyxy[3] - self.xyxy[1]


@dataclass(frozen=True)
class ImageResult:
    """One photo: labelled boxes, those found, detections of the scored labels and how many matched
    nothing; `has_detections` is False when no detections were given for it (counted as none found)."""

    image: str
    boxes: int
    found: int
    detections: int
    unmatched: int
    has_detections: bool


@dataclass
class Evaluation:
    """The scores of a set of photos; each label's tally counts boxes in "all" and in its height bucket."""

    buckets: tuple[Bucket, ...]
    tallies: dict[str, Tally] = field(default_factory=dict)
    images: list[ImageResult] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        """ "all", then the bucket names from small to large."""
        return [ALL, *(name for name, _, _ in self.buckets)]

    @property
    def without_detections(self) -> list[str]:
        """Photos for which no detections were given."""
        return [image.image for image in self.images if not image.has_detections]

    def to_dict(self) -> dict[str, Any]:
        """The scores as JSON types: per label (recall by group, boxes, unmatched per photo), per photo,
        every miss, and the ignored detections."""
        return {
            "iou_match": IOU_MATCH,
            "buckets": [{"name": n, "min_px": lo, "max_px": None if hi == float("inf") else hi}
                        for n, lo, hi in self.buckets],
            "labels": {label: _label_dict(tally, self.groups) for label, tally in self.tallies.items()},
            "images": [image.__dict__ for image in self.images],
            "misses": [{**miss.__dict__, "xyxy": list(miss.xyxy)} for miss in self.misses],
            "ignored_detections": self.ignored,
        }  # fmt: skip


def _label_dict(tally: Tally, groups: Sequence[str]) -> dict[str, Any]:
    per_image = max(tally.images, 1)
    return {
        "recall": {g: round(r, 4) for g in groups if (r := tally.recall(g)) is not None},
        "boxes": {g: tally.boxes[g] for g in groups if tally.boxes[g]},
        "found": {g: tally.hits[g] for g in groups if tally.boxes[g]},
        "detections": tally.detections,
        "unmatched": tally.unmatched,
        "unmatched_per_image": round(tally.unmatched / per_image, 3),
        "duplicates": tally.duplicates,
    }


def score_reports(
    truth: Mapping[str, Report],
    found: Mapping[str, Report | None],
    buckets: Sequence[Bucket] = SIZE_BUCKETS,
) -> Evaluation:
    """Scores the detections of each photo in `truth` (labelled boxes by photo name) against its labels;
    a photo missing from `found`, or None there, counts as one where nothing was found.

    Raises:
        AnnotationContentError: the labels hold no box at all, so there is nothing to score.
    """
    labelled = {name: _boxes(report) for name, report in truth.items()}
    labels = sorted({str(label) for boxes in labelled.values() for label in boxes.label.tolist()})
    if not labels:
        raise AnnotationContentError(f"the labels hold no box on any of the {len(truth)} photos")
    evaluation = Evaluation(tuple(buckets), {label: Tally() for label in labels})
    for name, boxes in labelled.items():
        report = found.get(name)
        detections = _boxes(report) if report is not None else Detections.empty()
        evaluation.images.append(_score_image(evaluation, name, boxes, detections, report is not None))
        for label in set(detections.label.tolist()) - set(labels):
            evaluation.ignored[label] = evaluation.ignored.get(label, 0) + int(
                (detections.label == label).sum()
            )
    return evaluation


def _score_image(
    evaluation: Evaluation, name: str, boxes: Detections, detections: Detections, has_detections: bool
) -> ImageResult:
    total = found = det_count = unmatched = 0
    for label, tally in evaluation.tallies.items():
        truth = boxes[boxes.label == label]
        dets = detections[detections.label == label]
        buckets = [height_bucket(float(y1 - y0), evaluation.buckets) for _, y0, _, y1 in truth.xyxy.tolist()]
        groups = [{ALL, b} if b else {ALL} for b in buckets]
        matching = tally.score_image(truth.xyxy, groups, dets.xyxy, dets.confidence)
        for (x0, y0, x1, y1), bucket, hit in zip(truth.xyxy.tolist(), buckets, matching.claimed, strict=True):
            if not hit:
                evaluation.misses.append(Miss(name, label, (x0, y0, x1, y1), bucket or ""))
        total, found = total + len(truth), found + sum(matching.claimed)
        det_count, unmatched = det_count + len(dets), unmatched + matching.unmatched
    return ImageResult(name, total, found, det_count, unmatched, has_detections)


def _boxes(report: Report) -> Detections:
    """Every box of a photo's report (one frame, or none)."""
    return Detections.merge([frame.detections for frame in report.frames])
