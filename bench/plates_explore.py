"""Measures the plate detector on the dev data: recall on openalpr_us, boxes per image there and on wider_dev.

Runs the text network once per image and input size and caches the probability maps (uint8) under
--cache, so filter settings can be swept without rerunning the network.

    .venv/bin/python bench/plates_explore.py maps --sizes 960 1280 1600          # network, timed
    .venv/bin/python bench/plates_explore.py sweep --sizes 1280                  # filters on cached maps
    .venv/bin/python bench/plates_explore.py report --sizes 640 960 1280 1600    # the defaults, per size
    .venv/bin/python bench/plates_explore.py time --sizes 640 960 1280 1600 --limit 40
    .venv/bin/python bench/plates_explore.py misses --size 1280 --out /tmp/miss   # draw missed plates

The data (../shared/data/dev) is read in place and never copied.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.boxes import box_iou
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.plates import PlateDetector, PlateFilter, plate_boxes, plate_like, text_lines
from veil.engine.media.image import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
IOU_HIT = 0.3


@dataclass(frozen=True)
class Sample:
    """One photo; `plate_xyxy` is the labelled plate (openalpr_us) or None (wider_dev)."""

    dataset: str
    image: str
    plate_xyxy: tuple[float, float, float, float] | None


def load_samples(limit: int | None) -> list[Sample]:
    """openalpr_us photos with their plate, then wider_dev photos, each list cut to `limit`."""
    plates: list[Sample] = []
    people: dict[str, Sample] = {}
    with (DATA / "manifest.csv").open() as f:
        for row in csv.DictReader(f):
            if row["dataset"] == "openalpr_us":
                x, y, w, h = (float(row[k]) for k in "xywh")
                plates.append(Sample("openalpr_us", row["image"], (x, y, x + w, y + h)))
            elif row["dataset"] == "wider_dev":
                people.setdefault(row["image"], Sample("wider_dev", row["image"], None))
    return plates[:limit] + list(people.values())[:limit]


def read_bgr(image: str) -> npt.NDArray[np.uint8]:
    """The photo upright, as `veil detect` reads it: (H, W, 3) BGR uint8."""
    return read_image(DATA / image).frame_bgr


def cache_path(cache: Path, size: int, sample: Sample) -> Path:
    return cache / str(size) / (sample.image.replace("/", "_") + ".npz")


def make_maps(samples: list[Sample], sizes: list[int], cache: Path, threads: int) -> None:
    """Runs the network at each size, saving maps and printing seconds per image (network + filter)."""
    for size in sizes:
        detector = PlateDetector(DetectorConfig(device="cpu"), max_side=size, threads=threads)
        (cache / str(size)).mkdir(parents=True, exist_ok=True)
        spent = 0.0
        for sample in samples:
            frame = read_bgr(sample.image)
            start = time.perf_counter()
            prob_map, scale = detector.probability_map(frame)
            detector.plates_from_map(prob_map, scale, frame.shape[1], frame.shape[0])
            spent += time.perf_counter() - start
            shape = np.array(frame.shape[:2])
            quantised = np.round(prob_map * 255).astype(np.uint8)
            np.savez_compressed(cache_path(cache, size, sample), map=quantised, scale=scale, shape=shape)
        print(f"size {size}: {spent / len(samples):.3f} s/image over {len(samples)} images")


@dataclass(frozen=True)
class LineTable:
    """Every text line of every photo at one input size, before the plate filter, as flat arrays.

    Attributes:
        rects: (M, 5) rotated rectangles in map pixels; scores: (M,); photo: (M,) index into the photo arrays.
        scale: (P,) frame to map pixels; size_wh: (P, 2) frame size; plate_xyxy: (P, 4), NaN for wider_dev.
    """

    rects: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    photo: npt.NDArray[np.int64]
    scale: npt.NDArray[np.float32]
    size_wh: npt.NDArray[np.float32]
    plate_xyxy: npt.NDArray[np.float32]


def load_lines(samples: list[Sample], cache: Path, size: int, pixel_threshold: float) -> LineTable:
    """Reads cached maps and finds every text line in them (no score threshold)."""
    rects, scores, photo, scale, size_wh = [], [], [], [], []
    for index, sample in enumerate(samples):
        saved = np.load(cache_path(cache, size, sample))
        found, found_scores = text_lines(saved["map"].astype(np.float32) / 255.0, pixel_threshold, 1.6)
        rects.append(found)
        scores.append(found_scores)
        photo.append(np.full(len(found), index))
        scale.append(float(saved["scale"]))
        size_wh.append(saved["shape"][::-1])
    plates = [s.plate_xyxy or (np.nan,) * 4 for s in samples]
    return LineTable(
        np.concatenate(rects),
        np.concatenate(scores),
        np.concatenate(photo),
        np.array(scale, np.float32),
        np.array(size_wh, np.float32),
        np.array(plates, np.float32),
    )


def detections_from_cache(detector: PlateDetector, cache: Path, size: int, sample: Sample) -> Detections:
    saved = np.load(cache_path(cache, size, sample))
    prob_map = saved["map"].astype(np.float32) / 255.0
    height, width = (int(v) for v in saved["shape"])
    return detector.plates_from_map(prob_map, float(saved["scale"]), width, height)


def evaluate(box_threshold: float, rules: PlateFilter, table: LineTable) -> dict[str, float]:
    """Recall at IoU>=0.3 and boxes per image on openalpr_us; boxes per image on wider_dev.

    Does what PlateDetector.plates_from_lines does, for all photos at once.
    """
    scale = table.scale[table.photo]
    long_side = table.size_wh.max(1)[table.photo] * scale
    keep = (table.scores >= box_threshold) & plate_like(table.rects, rules, long_side)
    boxes = plate_boxes(table.rects[keep], rules) / scale[keep, None]
    photo = table.photo[keep]
    size_wh = table.size_wh[photo]
    boxes = np.clip(boxes, 0, np.concatenate([size_wh, size_wh], axis=1))
    counts = np.bincount(photo, minlength=len(table.scale))
    overlap = np.diagonal(box_iou(boxes, table.plate_xyxy[photo]))
    best = np.zeros(len(table.scale), np.float32)
    np.maximum.at(best, photo, np.nan_to_num(overlap))
    is_plate = ~np.isnan(table.plate_xyxy[:, 0])
    return {
        "recall": float((best[is_plate] >= IOU_HIT).mean()),
        "boxes_alpr": float(counts[is_plate].mean()),
        "boxes_wider": float(counts[~is_plate].mean()) if (~is_plate).any() else 0.0,
    }


SWEEP: dict[str, list[float]] = {
    "pixel_threshold": [0.2, 0.3],
    "box_threshold": [0.3, 0.4, 0.5, 0.6],
    "min_aspect": [1.0, 1.5],
    "max_aspect": [6.0, 10.0],
    "min_height_frac": [0.004, 0.008],
    "max_height_frac": [0.06, 0.12],
    "grow_x": [1.15, 1.3],
    "grow_y": [1.0, 1.4],
}


def sweep(samples: list[Sample], sizes: list[int], cache: Path) -> None:
    """Prints one table row per combination of SWEEP values and size."""
    print("size  " + "  ".join(SWEEP) + "  recall  boxes/img(alpr)  boxes/img(wider)")
    for size, pixel_threshold in itertools.product(sizes, SWEEP["pixel_threshold"]):
        table = load_lines(samples, cache, size, pixel_threshold)
        for values in itertools.product(*list(SWEEP.values())[1:]):
            knobs = dict(zip(list(SWEEP)[1:], values, strict=True))
            box_threshold = knobs.pop("box_threshold")
            result = evaluate(box_threshold, replace(PlateFilter(), **knobs), table)
            row = "  ".join(f"{v:g}" for v in (pixel_threshold, *values))
            scores = f"{result['recall']:.3f}  {result['boxes_alpr']:.2f}  {result['boxes_wider']:.2f}"
            print(f"{size}  {row}  {scores}", flush=True)


def report(samples: list[Sample], sizes: list[int], cache: Path) -> None:
    """Prints recall and boxes per image for the detector's default settings at each size."""
    defaults = PlateDetector(DetectorConfig(device="cpu"), threads=1)
    for size in sizes:
        table = load_lines(samples, cache, size, defaults.pixel_threshold)
        result = evaluate(defaults.box_threshold, defaults.plate_filter, table)
        print(f"{size}: " + "  ".join(f"{k} {v:.3f}" for k, v in result.items()), flush=True)


def time_detect(samples: list[Sample], sizes: list[int], threads: int) -> None:
    """Seconds per image of detect() (resize, network, filter) on the given photos, decoding excluded."""
    frames = [read_bgr(sample.image) for sample in samples]
    for size in sizes:
        detector = PlateDetector(DetectorConfig(device="cpu"), max_side=size, threads=threads)
        detector.detect(frames[0])  # the first run allocates ONNX Runtime's buffers
        start = time.perf_counter()
        for frame in frames:
            detector.detect(frame)
        print(f"{size}: {(time.perf_counter() - start) / len(frames):.3f} s/image", flush=True)


def draw_misses(samples: list[Sample], size: int, cache: Path, out: Path) -> None:
    """Saves missed openalpr_us photos with the label (green), plates (red) and all text lines (blue)."""
    out.mkdir(parents=True, exist_ok=True)
    detector = PlateDetector(DetectorConfig(device="cpu"), threads=1)
    loose = PlateDetector(DetectorConfig(device="cpu"), threads=1, box_threshold=0.0)
    loose.plate_filter = PlateFilter(min_aspect=0, max_aspect=1e9, max_angle_deg=90, min_height_frac=0)
    for sample in samples:
        if sample.plate_xyxy is None:
            continue
        found = detections_from_cache(detector, cache, size, sample)
        if len(found) and box_iou(found.xyxy, sample.plate_xyxy).max() >= IOU_HIT:
            continue
        frame = read_bgr(sample.image)
        for det, colour in (
            (detections_from_cache(loose, cache, size, sample), (255, 0, 0)),
            (found, (0, 0, 255)),
        ):
            for x0, y0, x1, y1 in det.xyxy.astype(int):
                cv2.rectangle(frame, (x0, y0), (x1, y1), colour, 1)
        x0, y0, x1, y1 = (int(v) for v in sample.plate_xyxy)
        cv2.rectangle(frame, (x0, y0), (x1, y1), (0, 255, 0), 2)
        cv2.imwrite(str(out / Path(sample.image).name), frame)
        print("missed", sample.image)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["maps", "sweep", "report", "time", "misses"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1280])
    parser.add_argument("--limit", type=int, default=None, help="first N photos of each dataset")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/veil_plate_maps"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/veil_plate_misses"))
    args = parser.parse_args()
    samples = load_samples(args.limit)
    if args.command == "maps":
        make_maps(samples, args.sizes, args.cache, args.threads)
    elif args.command == "sweep":
        sweep(samples, args.sizes, args.cache)
    elif args.command == "report":
        report(samples, args.sizes, args.cache)
    elif args.command == "time":
        time_detect([s for s in samples if s.plate_xyxy is not None], args.sizes, args.threads)
    else:
        draw_misses(samples, args.sizes[0], args.cache, args.out)


if __name__ == "__main__":
    main()
