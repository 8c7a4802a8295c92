"""Veil's detections checked against a person's own labels: what the defaults miss on their data.

    evaluate(labels, format_name, images=DIR, detections=DIR | anonymizer=...) -> EvaluationRun
        Reads the labels with the annotation importer of `format_name` (`veil.engine.annotations`), for
        the photos under `images` (named by relative POSIX path, as the labels name them). The detections
        come from `detections`, a folder of veil.detections/1 files as `veil detect IMAGES -o DIR` writes
        them (`DIR/<name>.json`), or from running `anonymizer`'s detectors over the photos. Without
        `images`, the photos and their sizes are those the detection files describe (no crops then).

    score_reports(truth, found) -> Evaluation
        The scoring itself, on reports by photo name: recall per label and per box height (SIZE_BUCKETS:
        under 16, 16-31, 32-95, 96 px and up), unmatched detections per photo, and every missed box.

    write_report(evaluation, out_dir, about, photos, found) -> Path
        A self-contained HTML page with a recall-by-size chart and a crop of every miss.

Matching (`scoring`) is greedy by score at IoU >= 0.3, the same code bench/eval_detections.py scores the
dev sets with. Photos only: labels naming video frames are refused by the importer as naming no photo.

Raises: AnnotationError (the importer's, or a detections file that is not veil.detections/1),
SizeMismatchError (detections made for a photo of another size), MediaError (no photos, an unreadable
photo), OutputError (the report cannot be written), ModelError (from `anonymizer`'s detectors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from veil.engine.anonymizer import Anonymizer
from veil.engine.errors import MediaError
from veil.engine.evaluation.dataset import (
    find_photos,
    photo_info,
    read_detection_folder,
    read_detections,
    read_labels,
    run_detectors,
)
from veil.engine.evaluation.html_report import MAX_CROPS, write_report
from veil.engine.evaluation.results import Evaluation, ImageResult, Miss, score_reports
from veil.engine.evaluation.scoring import IOU_MATCH, SIZE_BUCKETS, Bucket, Tally, match
from veil.engine.report import Report

__all__ = [
    "IOU_MATCH",
    "MAX_CROPS",
    "SIZE_BUCKETS",
    "Bucket",
    "Evaluation",
    "EvaluationRun",
    "ImageResult",
    "Miss",
    "Tally",
    "evaluate",
    "match",
    "score_reports",
    "write_report",
]


@dataclass(frozen=True)
class EvaluationRun:
    """The scores, the photos' files by name (None when no images folder was given) and the detections
    scored, by name (None for a photo without a detections file)."""

    evaluation: Evaluation
    photos: dict[str, Path] | None
    found: dict[str, Report | None]


def evaluate(
    labels: Path,
    format_name: str,
    *,
    images: Path | None = None,
    detections: Path | None = None,
    anonymizer: Anonymizer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationRun:
    """Scores the detections in `detections`, or those `anonymizer` finds, against `labels`; see the
    module docstring. The labels are read first, so a wrong file fails before any detector runs.

    Raises:
        ValueError: both or neither of `detections` and `anonymizer` given.
        MediaError: `anonymizer` given without `images`, or no photos there.
    """
    if (detections is None) == (anonymizer is None):
        raise ValueError("give either a detections folder or an anonymizer to run")
    if images is None:
        if detections is None:
            raise MediaError("running the detectors needs the labelled photos: give their folder")
        described = read_detection_folder(detections)
        truth = read_labels(labels, format_name, {name: r.media for name, r in described.items()})
        return EvaluationRun(score_reports(truth, described), None, dict(described))
    photos = find_photos(images)
    truth = read_labels(labels, format_name, {name: photo_info(path) for name, path in photos.items()})
    if detections is not None:
        found = read_detections(detections, truth)
    else:
        assert anonymizer is not None  # checked above
        found = dict(run_detectors(anonymizer, photos, progress))
    return EvaluationRun(score_reports(truth, found), photos, found)
