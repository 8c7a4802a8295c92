"""Veil's detections checked against a person's own labels: what the defaults miss on their data.

    evaluate(labels, format_name, images=DIR, detections=DIR | anonymizer=...) -> EvaluationRun
        Reads the labels with the annotation importer of `format_name` (`veil.engine.annotations`; or
        `CVAT_XML`, either CVAT layout as the file holds it), for the photos and videos under `images`
        (named by relative POSIX path, as the labels name them; a video's size, rate and frame count read
        from its header). The detections come from `detections`, a folder of veil.detections/1 files as
        `veil detect MEDIA -o DIR` writes them (`DIR/<name>.json`, a video's with all its frames), or from
        running `anonymizer`'s detectors over the files: photos as `veil detect` does, videos through the
        video pipeline (detection on key frames, tracking between), writing nothing. Without `images`, the
        media and their sizes are those the detection files describe (no crops then).

    score_reports(truth, found) -> Evaluation
        The scoring itself, on reports by media name: every video frame with a labelled box (CVAT for
        video's tracks give one on each frame between key frames) and, when any photo has a labelled box,
        every photo, scored alike as images:
        recall per label and per box height (SIZE_BUCKETS: under 16, 16-31, 32-95, 96 px and up),
        unmatched detections per image, and every missed box ("clip.mp4 frame 123").

    write_report(evaluation, out_dir, about, media, found) -> Path
        A self-contained HTML page with a recall-by-size chart and a crop of every miss (up to MAX_CROPS;
        a video decoded once for its crops).

Matching (`scoring`) is greedy by score at IoU >= 0.3, the same code bench/eval_detections.py scores the
dev sets with.

Raises: AnnotationError (the importer's, such as labels naming a video not in the folder, or a detections
file that is not veil.detections/1), SizeMismatchError (detections made for a photo or video of another
size), MediaError (no photos or videos, an unreadable one), OutputError (the report cannot be written),
ModelError (from `anonymizer`'s detectors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from veil.engine.anonymizer import Anonymizer
from veil.engine.errors import MediaError
from veil.engine.evaluation.dataset import (
    CVAT_XML,
    find_media,
    media_info,
    read_detection_folder,
    read_detections,
    read_labels,
    run_detectors,
)
from veil.engine.evaluation.html_report import MAX_CROPS, write_report
from veil.engine.evaluation.results import Evaluation, ImageResult, Miss, score_reports, scored_media
from veil.engine.evaluation.scoring import IOU_MATCH, SIZE_BUCKETS, Bucket, Tally, match
from veil.engine.report import Report

__all__ = [
    "CVAT_XML",
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
    """The scores, the photos' and videos' files by name (None when no images folder was given) and the
    detections scored, by name (None for a file without a detections file)."""

    evaluation: Evaluation
    media: dict[str, Path] | None
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
    module docstring. The labels are read first, so a wrong file fails before any detector runs; files
    with nothing to score (`scored_media`) are neither read nor run. `progress(done, total)` counts a
    photo as one and a video as its frames.

    Raises:
        ValueError: both or neither of `detections` and `anonymizer` given.
        MediaError: `anonymizer` given without `images`, or no photos or videos there.
    """
    if (detections is None) == (anonymizer is None):
        raise ValueError("give either a detections folder or an anonymizer to run")
    if images is None:
        if detections is None:
            raise MediaError("running the detectors needs the labelled photos and videos: give their folder")
        described = read_detection_folder(detections)
        truth = read_labels(labels, format_name, {name: r.media for name, r in described.items()})
        return EvaluationRun(score_reports(truth, described), None, dict(described))
    files = find_media(images)
    truth = read_labels(labels, format_name, {name: media_info(path) for name, path in files.items()})
    scored = scored_media(truth)
    if detections is not None:
        found = read_detections(detections, scored)
    else:
        assert anonymizer is not None  # checked above
        media = {name: (files[name], report.media) for name, report in scored.items()}
        found = dict(run_detectors(anonymizer, media, progress))
    return EvaluationRun(score_reports(truth, found), files, found)
