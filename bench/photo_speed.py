"""Photos per second with the default detectors (faces and plates), detection only, decode excluded.

Times on the same photos, one after the other per photo: the two detectors run in turn, the two run side by
side in threads (ONNX Runtime releases the GIL), and, as the cost before issue 9, faces with the plate
candidates alone (the text network and shape rules the old plate detector ran, without reading).

    .venv/bin/python bench/photo_speed.py --every 10
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector, DetectorConfig, load_detector
from veil.engine.detectors.plates import PlateCandidates
from veil.engine.media.image import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
DATASETS = ("wider_dev", "openalpr_us", "plates_ro", "plates_eg", "plates_in")

Frame = npt.NDArray[np.uint8]


def photos(every: int) -> list[tuple[str, Path]]:
    with (DATA / "manifest.csv").open(newline="") as f:
        names = sorted(
            {(row["dataset"], row["image"]) for row in csv.DictReader(f) if row["dataset"] in DATASETS}
        )
    by_set: dict[str, list[Path]] = defaultdict(list)
    for dataset, image in names:
        by_set[dataset].append(DATA / image)
    return [(name, path) for name in DATASETS for path in by_set[name][::every]]


def in_turn(detectors: Sequence[Detector]) -> Callable[[Frame], Detections]:
    return lambda frame: Detections.merge([d.detect(frame) for d in detectors])


def side_by_side(detectors: Sequence[Detector], pool: ThreadPoolExecutor) -> Callable[[Frame], Detections]:
    return lambda frame: Detections.merge(list(pool.map(lambda d: d.detect(frame), detectors)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=10, help="every N-th photo of each set")
    args = parser.parse_args()
    config, fp32 = DetectorConfig(device="cpu"), DetectorConfig(device="cpu", int8=False)
    face, plate = load_detector("face", config), load_detector("plate", config)
    fp32_pair = [load_detector("face", fp32), load_detector("plate", fp32)]
    with ThreadPoolExecutor(2) as pool:
        ways = {
            "faces + plate candidates, in turn (cost before issue 9)": in_turn(
                [face, PlateCandidates(config)]
            ),
            "faces + plates, in turn": in_turn([face, plate]),
            "faces + plates, side by side": side_by_side([face, plate], pool),
            "faces + plates, side by side, FP32 networks": side_by_side(fp32_pair, pool),
        }
        spent: dict[str, dict[str, float]] = {way: defaultdict(float) for way in ways}
        counts: dict[str, int] = defaultdict(int)
        for dataset, path in photos(args.every):
            frame = read_image(path).frame_bgr
            counts[dataset] += 1
            for way, detect in ways.items():
                start = time.perf_counter()
                detect(frame)
                spent[way][dataset] += time.perf_counter() - start
    print("| way | " + " | ".join(f"{name} ({counts[name]})" for name in DATASETS) + " | all |")
    print("| --- |" + " --- |" * (len(DATASETS) + 1))
    for way, seconds in spent.items():
        cells = [f"{counts[name] / seconds[name]:.2f}" for name in DATASETS]
        total = sum(counts.values()) / sum(seconds.values())
        print(f"| {way} | " + " | ".join(cells) + f" | {total:.2f} |")


if __name__ == "__main__":
    main()
