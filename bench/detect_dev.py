"""Runs the CenterFace detector over the dev images and writes one veil.detections/1 JSON per image.

    python bench/detect_dev.py --out /tmp/det/base [--dataset wider_dev] [--every 4] \
        [--scales 1,2] [--max-side 640] [--flip] [--threshold 0.2] [--nms-iou 0.3]

Output: OUT/<image path relative to data/dev>.json, the layout `veil detect` writes, plus OUT/_run.json with
the settings and the detection throughput (images/s, model time only: decoding the JPEG is left out).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.report import MediaInfo, Report

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "manifest.csv"


def load_bgr(path: Path) -> npt.NDArray[np.uint8]:
    """Reads a photo upright (EXIF orientation applied) as an (H, W, 3) BGR uint8 array."""
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, ::-1])


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
    parser.add_argument("--scales", default="1", help="comma-separated resize factors, e.g. 1,2")
    parser.add_argument("--max-side", type=int, help="cap on the network input's longest side, pixels")
    parser.add_argument("--flip", action="store_true", help="also detect on the mirrored image")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--nms-iou", type=float, default=0.3)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    detector = CenterFaceDetector(
        DetectorConfig(device="cpu", threshold=args.threshold),
        scales=tuple(float(s) for s in args.scales.split(",")),
        max_side=args.max_side,
        flip=args.flip,
        nms_iou=args.nms_iou,
    )
    root = args.manifest.parent
    images = manifest_images(args.manifest, args.dataset, args.every)
    seconds = 0.0
    for name in images:
        frame = load_bgr(root / name)
        start = time.perf_counter()
        detections = detector.detect(frame)
        seconds += time.perf_counter() - start
        report = Report(MediaInfo("image", frame.shape[1], frame.shape[0]))
        report.add(0, 0.0, detections)
        target = args.out / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(report.to_json()))
    run = {"settings": vars(args) | {"threshold": detector.threshold}, "images": len(images)}
    run["images_per_s"] = round(len(images) / seconds, 2) if seconds else None
    (args.out / "_run.json").write_text(json.dumps(run, default=str, indent=2))
    print(json.dumps(run, default=str))


if __name__ == "__main__":
    main()
