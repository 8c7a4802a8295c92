"""Runs the CenterFace detector over the dev images and writes one veil.detections/1 JSON per image.

    python bench/detect_dev.py --out /tmp/det/base [--dataset wider_dev] [--every 4] [--threshold 0.2] \
        [--scales 1,2] [--max-side 640] [--max-upscaled-side 2048] [--valid-height 32,128|none] [--flip]

Output: OUT/<image path relative to data/dev>.json, the layout `veil detect` writes, plus OUT/_run.json with
the settings and the detection throughput (images/s, model time only: decoding the JPEG is left out).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.media.image import read_image
from veil.engine.report import MediaInfo, Report

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "manifest.csv"


def manifest_images(manifest: Path, dataset: str | None, every: int) -> list[str]:
    """Sorted unique image paths (relative to the manifest's folder), keeping every `every`-th one."""
    with manifest.open(newline="") as f:
        images = {row["image"] for row in csv.DictReader(f) if dataset in (None, row["dataset"])}
    return sorted(images)[::every]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", choices=["wider_dev", "openalpr_us"])
    parser.add_argument("--every", type=int, default=1, help="keep every N-th image, for quick subset runs")
    # Options left out keep the detector's shipped defaults.
    parser.add_argument("--scales", help="comma-separated resize factors, e.g. 1,2")
    parser.add_argument("--max-side", type=int, help="cap on the network input's longest side, pixels")
    parser.add_argument("--max-upscaled-side", type=int, help="cap on enlarging passes' longest side")
    parser.add_argument("--valid-height", help="MIN,MAX network-pixel box heights per pass, or 'none'")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, help="flip test")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--nms-iou", type=float)
    return parser.parse_args()


def detector_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for CenterFaceDetector from the options given on the command line."""
    options: dict[str, Any] = {
        "max_side": args.max_side,
        "max_upscaled_side": args.max_upscaled_side,
        "flip": args.flip,
        "nms_iou": args.nms_iou,
    }
    if args.scales:
        options["scales"] = tuple(float(s) for s in args.scales.split(","))
    if args.valid_height:
        low_high = args.valid_height.split(",")
        options["valid_height"] = (
            None if args.valid_height == "none" else (float(low_high[0]), float(low_high[1]))
        )
    return {k: v for k, v in options.items() if v is not None or k == "valid_height"}


def main() -> None:
    args = parse_args()
    detector = CenterFaceDetector(
        DetectorConfig(device="cpu", threshold=args.threshold), **detector_options(args)
    )
    root = args.manifest.parent
    images = manifest_images(args.manifest, args.dataset, args.every)
    seconds = 0.0
    for name in images:
        frame = read_image(root / name).frame_bgr  # upright, as `veil detect` reads it
        start = time.perf_counter()
        detections = detector.detect(frame)
        seconds += time.perf_counter() - start
        report = Report(MediaInfo("image", frame.shape[1], frame.shape[0]))
        report.add(0, 0.0, detections)
        target = args.out / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(report.to_json())
    settings = {k: getattr(detector, k) for k in ("threshold", "scales", "max_side", "max_upscaled_side")}
    settings |= {k: getattr(detector, k) for k in ("valid_height", "flip", "nms_iou")}
    run: dict[str, Any] = {"settings": settings, "every": args.every, "images": len(images)}
    run["images_per_s"] = round(len(images) / seconds, 2) if seconds else None
    (args.out / "_run.json").write_text(json.dumps(run, default=str, indent=2))
    print(json.dumps(run, default=str))


if __name__ == "__main__":
    main()
