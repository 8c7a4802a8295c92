"""Veil's detections of labelled photos and video frames scored per label, per box height and per image,
with every miss.

An image is a photo, or a frame of a video that has at least one labelled box: CVAT for video interpolates a
track's box onto every frame between its key frames, and those frames are scored each like a photo. Video
frames with no labelled box are not scored, so a video labelled over part of its length does not count the
detections on the rest as unmatched. Photos are scored when the labels hold a box on any photo: then every
photo, one without boxes as a photo with no face; labels of videos alone leave the photos beside them out.

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

__all__ = ["Evaluation", "ImageResult", "Miss", "score_reports", "scored_media"]

ALL = "all"


def _where(image: str, frame: int | None) -> str:
    """How a person reads where a box is: "a.jpg", or "clip.mp4 frame 123"."""
    return image if frame is None else f"{image} frame {frame}"


@dataclass(frozen=True)
class Miss:
    """A labelled box no detection claimed: the media file, the video frame (None on a photo), the label,
    xyxy pixels and its height bucket."""

    image: str
    frame: int | None
    label: str
    xyxy: tuple[float, float, float, float]
    bucket: str

    @property
    def height(self) -> float:
        return self.xyxy[3] - self.xyxy[1]

    @property
    def where(self) -> str:
        return _where(self.image, self.frame)


@dataclass(frozen=True)
class ImageResult:
    """One photo or video frame (`frame` None on a photo): labelled boxes, those found, detections of the
    scored labels and how many matched nothing; `has_detections` is False when no detections were given for
    its file (counted as none found)."""

    image: str
    frame: int | None
    boxes: int
    found: int
    detections: int
    unmatched: int
    has_detections: bool

    @property
    def where(self) -> str:
        return _where(self.image, self.frame)


@dataclass
class Evaluation:
    """The scores of a set of images; each label's tally counts boxes in "all" and in its height bucket."""

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
        """Media files (photos and videos) for which no detections were given."""
        return list(dict.fromkeys(image.image for image in self.images if not image.has_detections))

    @property
    def video_frames(self) -> int:
        """How many of the images are video frames; the others are photos."""
        return sum(image.frame is not None for image in self.images)

    @property
    def counted(self) -> str:
        """What was scored, photos and video frames apart: "12 photos and 1,800 video frames"."""
        frames = self.video_frames
        parts = [(len(self.images) - frames, "photo"), (frames, "video frame")]
        said = [f"{n:,} {word}{'' if n == 1 else 's'}" for n, word in parts if n]
        return " and ".join(said) or "0 photos"

    def to_dict(self) -> dict[str, Any]:
        """The scores as JSON types: per label (recall by group, boxes, unmatched per image), per image,
        every miss, and the ignored detections."""
        return {
            "iou_match": IOU_MATCH,
            "photos": len(self.images) - self.video_frames,
            "video_frames": self.video_frames,
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
    """Scores the detections of each photo in `truth` (labelled boxes by media name), and of each video
    frame there with a labelled box, against its labels; a file missing from `found`, or None there, counts
    as one where nothing was found.

    Raises:
        AnnotationContentError: the labels hold no box at all, so there is nothing to score.
    """
    scored = scored_media(truth)
    if not scored:
        raise AnnotationContentError(f"the labels hold no box on any of the {len(truth)} photos or videos")
    images = [(name, frame, boxes) for name, report in scored.items() for frame, boxes in _labelled(report)]
    labels = sorted({str(label) for _, _, boxes in images for label in boxes.label.tolist()})
    evaluation = Evaluation(tuple(buckets), {label: Tally() for label in labels})
    by_frame = {
        name: {frame.index: frame.detections for frame in report.frames}
        for name, report in found.items()
        if report is not None
    }
    for name, frame, boxes in images:
        detected = by_frame.get(name)
        detections = (detected or {}).get(frame or 0, _NONE)
        evaluation.images.append(
            _score_image(evaluation, name, frame, boxes, detections, detected is not None)
        )
        for label in set(detections.label.tolist()) - set(labels):
            evaluation.ignored[label] = evaluation.ignored.get(label, 0) + int(
                (detections.label == label).sum()
            )
    return evaluation


_NONE = Detections.empty()


def scored_media(truth: Mapping[str, Report]) -> dict[str, Report]:
    """The files with something to score (see the module docstring): videos with a labelled frame, and
    every photo when the labels hold a box on any photo."""
    photos = any(report.media.type == "image" and report.frames for report in truth.values())
    return {
        name: report
        for name, report in truth.items()
        if report.frames or (photos and report.media.type == "image")
    }


def _labelled(report: Report) -> list[tuple[int | None, Detections]]:
    """What is scored in a file: a photo's boxes (one frame, or none) at frame None; each video frame
    with a labelled box."""
    if report.media.type == "image":
        return [(None, Detections.merge([frame.detections for frame in report.frames]))]
    return [(frame.index, frame.detections) for frame in report.frames]


def _score_image(
    evaluation: Evaluation,
    name: str,
    frame: int | None,
    boxes: Detections,
    detections: Detections,
    has_detections: bool,
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
                evaluation.misses.append(Miss(name, frame, label, (x0, y0, x1, y1), bucket or ""))
        total, found = total + len(truth), found + sum(matching.claimed)
        det_count, unmatched = det_count + len(dets), unmatched + matching.unmatched
    return ImageResult(name, frame, total, found, det_count, unmatched, has_detections)
