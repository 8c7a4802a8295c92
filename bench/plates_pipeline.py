"""Plate detection stage by stage on the four dev plate sets and wider_dev (people, no plates).

Issue 9's plate levers, measured with the engine's own stages (veil.engine.detectors.plates) on all four plate
sets at once (openalpr_us, plates_ro, plates_eg, plates_in) and on wider_dev, where every plate box is false.
The networks run once and are cached under --cache, so settings are swept without rerunning them:

    .venv/bin/python bench/plates_pipeline.py maps             # text network at 1280 px per photo
    .venv/bin/python bench/plates_pipeline.py read             # candidates at a loose score, each one read
    .venv/bin/python bench/plates_pipeline.py report           # recall and false boxes per setting, per half
    .venv/bin/python bench/plates_pipeline.py run --parity 1   # the default detector end to end, timed
    .venv/bin/python bench/plates_pipeline.py speed --every 10 # with and without reading, same photos

`report` prints each setting on the even-numbered photos (sorted by name) of each set, where settings were
chosen, and on the odd-numbered ones, which were not looked at while choosing. Scoring uses
bench/eval_detections.py's greedy matching at IoU >= 0.3. The data (../shared/data/dev) is read in place.
"""

from __future__ import annotations

import argparse
import csv
import pickle
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.plates import PlateCandidates, plate_detector
from veil.engine.detectors.plates.candidates import LineShape, TextLineFinder, TextLines
from veil.engine.detectors.plates.outline import PlateOutline
from veil.engine.evaluation import match
from veil.engine.media.image import read_image
from veil.engine.verifiers.plate_text import (
    PlateTextRule,
    Reading,
    TextReader,
    crop_box,
    halves,
    unread_blocks,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
PLATE_SETS = ("openalpr_us", "plates_ro", "plates_eg", "plates_in")
DATASETS = (*PLATE_SETS, "wider_dev")
SIZE = 1280
LOOSE_SCORE = 0.25


@dataclass(frozen=True)
class Sample:
    """One photo, its index in its set (sorted by name) and its labelled plates as xyxy pixels."""

    dataset: str
    image: str
    index: int
    plates_xyxy: tuple[tuple[float, float, float, float], ...]


def load_samples(every: int = 1) -> list[Sample]:
    boxes: dict[tuple[str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    with (DATA / "manifest.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["dataset"] not in DATASETS:
                continue
            entry = boxes[(row["dataset"], row["image"])]
            if row["label"] == "plate":
                x, y, w, h = (float(row[k]) for k in "xywh")
                entry.append((x, y, x + w, y + h))
    samples = []
    for name in DATASETS:
        images = sorted(image for dataset, image in boxes if dataset == name)
        samples += [
            Sample(name, im, i, tuple(boxes[(name, im)])) for i, im in enumerate(images) if i % every == 0
        ]
    return samples


def map_path(cache: Path, sample: Sample) -> Path:
    return cache / "maps" / (sample.image.replace("/", "_") + ".npz")


def make_maps(samples: list[Sample], cache: Path, threads: int) -> None:
    """Runs the photo text network once per photo and stores its map (uint8) beside the scale and size."""
    finder = TextLineFinder(DetectorConfig(device="cpu"), max_side=SIZE, threads=threads)
    (cache / "maps").mkdir(parents=True, exist_ok=True)
    for sample in samples:
        if map_path(cache, sample).exists():
            continue
        frame = read_image(DATA / sample.image).frame_bgr
        prob_map, scale = finder.probability_map(frame)
        quantised = np.round(prob_map * 255).astype(np.uint8)
        np.savez_compressed(
            map_path(cache, sample), map=quantised, scale=scale, shape=np.array(frame.shape[:2])
        )


def linecrop_box(frame: npt.NDArray[np.uint8], box: npt.NDArray[np.float32], outline: PlateOutline) -> Any:
    """The middle of a plate box where its text line is: the box shrunk by the outline's growth."""
    centre, size = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / [outline.grow_length, outline.grow_height]
    return crop_box(frame, np.concatenate([centre - size / 2, centre + size / 2]).astype(np.float32))


def rotatedcrop_box(frame: npt.NDArray[np.uint8], rect: npt.NDArray[np.float32]) -> Any:
    """The (cx, cy, w, h, angle) line cut out upright, long side horizontal; blocks by their upright box."""
    cx, cy, w, h, angle = (float(v) for v in rect)
    if max(w, h) < 1.6 * min(w, h):
        corners = cv2.boxPoints(((cx, cy), (w, h), angle))
        return crop_box(frame, np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32))
    if h > w:
        w, h, angle = h, w, angle - 90.0
    angle = (angle + 90.0) % 180.0 - 90.0
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] += (w / 2 - cx, h / 2 - cy)
    size = (max(2, round(w)), max(2, round(h)))
    return cv2.warpAffine(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def read_candidates(samples: list[Sample], cache: Path, threads: int, crop: str) -> None:
    """Loose candidates (score >= LOOSE_SCORE, default shapes) from each cached map, outlined and read.

    `crop`: "box" reads the plate box, "line" its middle where the line is, "rotated" the line turned level.
    """
    finder = TextLineFinder(DetectorConfig(device="cpu"), max_side=SIZE, box_threshold=LOOSE_SCORE, threads=1)
    reader = TextReader("cpu", threads)
    outline = PlateOutline()
    photos = []
    for sample in samples:
        saved = np.load(map_path(cache, sample))
        height, width = (int(v) for v in saved["shape"])
        lines = finder.lines_from_map(
            saved["map"].astype(np.float32) / 255.0, float(saved["scale"]), max(height, width)
        )
        frame = read_image(DATA / sample.image).frame_bgr
        boxes = Detections.from_boxes(outline.boxes(lines), lines.scores, "plate")
        if crop == "box":
            crops = [crop_box(frame, box) for box in boxes.xyxy]
        elif crop == "line":
            crops = [linecrop_box(frame, box, outline) for box in boxes.xyxy]
        else:
            crops = [rotatedcrop_box(frame, rect) for rect in lines.rects]
        whole = reader.read(crops)
        split = reader.read([half for crop in crops for half in halves(crop)])
        photos.append(
            {
                "sample": sample,
                "size_wh": (width, height),
                "lines": lines,
                "crop_wh": [(c.shape[1], c.shape[0]) for c in crops],
                "whole": whole,
                "halves": list(zip(split[0::2], split[1::2], strict=True)),
            }
        )
    (cache / f"candidates-{crop}.pkl").write_bytes(pickle.dumps(photos))


@dataclass(frozen=True)
class Setting:
    """One way from cached candidates to plates.

    Attributes:
        name: row label. score: lowest line score. shape: candidate shape rules. outline: line -> plate.
        read: verify by reading; rule: which readings are plates; halves_below: boxes narrower than this
            (width / height) that fail whole are read again as two halves (0: never).
        any_half: a failed box also passes when its top or bottom half alone reads as a plate.
        block_veto: boxes narrower than halves_below that fail are still kept unless read whole as confident
            (mean confidence >= this) Latin text: scripts the recognizer lacks (Arabic) read as low-confidence
            noise. None: no veto.
        unread_blocks: keep failed boxes as the engine's `unread_blocks` does (block-shaped, <= 5% of the
            photo, not surely Latin).
    """

    name: str
    score: float = 0.4
    shape: LineShape = field(default_factory=LineShape)
    outline: PlateOutline = field(default_factory=PlateOutline)
    read: bool = True
    rule: PlateTextRule = field(default_factory=PlateTextRule)
    halves_below: float = 99.0
    block_veto: float | None = None
    any_half: bool = True
    unread_blocks: bool = True


OLD_RULE = PlateTextRule(max_lowercase=99, letter_groups_confidence=None)
FIRST = {"any_half": False, "halves_below": 2.0, "rule": OLD_RULE, "unread_blocks": False}
LAST = {"unread_blocks": False}
DEFAULT = Setting("default (+ unreadable blocks up to 5% of the photo kept)")
SETTINGS = [
    Setting("candidates only, unread", read=False),
    Setting("first rule: halves joined, boxes under 2:1 only, any case", **FIRST),
    Setting("first rule, no halves", **(FIRST | {"halves_below": 0.0})),
    Setting("first rule, halves joined for every failed box", **(FIRST | {"halves_below": 99.0})),
    Setting("first rule, halves joined under 1.6:1", **(FIRST | {"halves_below": 1.6})),
    Setting("first rule, score 0.3", score=0.3, **FIRST),
    Setting("first rule, score 0.25", score=0.25, **FIRST),
    Setting("first rule, confidence 0.5", **(FIRST | {"rule": replace(OLD_RULE, min_confidence=0.5)})),
    Setting("first rule, confidence 0.2", **(FIRST | {"rule": replace(OLD_RULE, min_confidence=0.2)})),
    Setting("first rule, 4-10 characters", **(FIRST | {"rule": replace(OLD_RULE, min_chars=4)})),
    Setting("first rule, 2 digits", **(FIRST | {"rule": replace(OLD_RULE, min_digits=2)})),
    Setting("first rule, no other script", **(FIRST | {"rule": replace(OLD_RULE, max_other=0)})),
    Setting("first rule, up to 12 characters", **(FIRST | {"rule": replace(OLD_RULE, max_chars=12)})),
    Setting("halves apart too, every failed box, any case", rule=OLD_RULE, **LAST),
    Setting("+ <= 2 lower case", rule=PlateTextRule(max_lowercase=2, letter_groups_confidence=None), **LAST),
    Setting("+ <= 1 lower case", rule=PlateTextRule(letter_groups_confidence=None), **LAST),
    Setting("+ letter groups (UHI-FOF): default without unreadable blocks", **LAST),
    Setting(
        "+ every failed block under 2:1 kept unless surely Latin", halves_below=2.0, block_veto=0.8, **LAST
    ),
    DEFAULT,
    Setting("default, 12 characters", rule=PlateTextRule(max_chars=12)),
    Setting("default, no halves", halves_below=0.0),
    Setting("default, score 0.3", score=0.3),
    Setting("default, no lower case", rule=PlateTextRule(max_lowercase=0)),
]


def kept(photo: dict[str, Any], setting: Setting) -> npt.NDArray[np.bool_]:
    """Which of a photo's cached candidates the setting keeps."""
    lines: TextLines = photo["lines"]
    keep = (lines.scores >= setting.score) & setting.shape.accepts(lines, max(photo["size_wh"]))
    if not setting.read:
        return keep
    for i in np.flatnonzero(keep):
        ok = setting.rule.accepts(photo["whole"][i])
        width, height = photo["crop_wh"][i]
        if not ok and width < setting.halves_below * height:
            top, bottom = photo["halves"][i]
            ok = setting.rule.accepts(Reading(top.text + bottom.text, top.confidence + bottom.confidence))
            ok = ok or (setting.any_half and (setting.rule.accepts(top) or setting.rule.accepts(bottom)))
            if not ok and setting.block_veto is not None:
                ok = not confident_latin(photo["whole"][i], setting.block_veto)
        keep[i] = ok
    if setting.unread_blocks:
        width, height = photo["size_wh"]
        boxes = setting.outline.boxes(lines)
        keep |= (lines.scores >= setting.score) & unread_blocks(boxes, photo["whole"], width * height)
    return keep


def confident_latin(reading: Reading, min_confidence: float) -> bool:
    """Whether a reading is at least 3 ASCII letters or digits read with that mean confidence."""
    latin = [p for c, p in zip(reading.text, reading.confidence, strict=False) if c.isascii() and c.isalnum()]
    return len(latin) >= 3 and float(np.mean(latin)) >= min_confidence


def score(photos: list[dict[str, Any]], setting: Setting, parity: int) -> dict[str, Any]:
    """Recall per plate set and wider_dev false boxes per photo, on photos of that index parity."""
    hits: dict[str, int] = defaultdict(int)
    plates: dict[str, int] = defaultdict(int)
    boxes: dict[str, int] = defaultdict(int)
    large: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for photo in photos:
        sample: Sample = photo["sample"]
        if sample.index % 2 != parity:
            continue
        keep = kept(photo, setting)
        width, height = photo["size_wh"]
        lines: TextLines = photo["lines"][keep]
        xyxy = np.clip(setting.outline.boxes(lines), 0, [width, height, width, height]).astype(float)
        truth = np.array(sample.plates_xyxy, float).reshape(-1, 4)
        name = sample.dataset
        hits[name] += sum(match(truth, xyxy, lines.scores.astype(float)).claimed)
        plates[name] += len(truth)
        boxes[name] += len(xyxy)
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        large[name] += int((area > 0.05 * width * height).sum())
        count[name] += 1
    result: dict[str, Any] = {n: round(hits[n] / plates[n], 3) for n in PLATE_SETS if plates[n]}
    result["wider boxes/photo"] = round(boxes["wider_dev"] / max(count["wider_dev"], 1), 2)
    result["wider >5%"] = large["wider_dev"]
    return result


def report(cache: Path, crop: str) -> None:
    """One markdown row per setting and half (even photos: tuning; odd photos: held out)."""
    photos = pickle.loads((cache / f"candidates-{crop}.pkl").read_bytes())
    header = ["setting", "photos", *PLATE_SETS, "wider boxes/photo", "wider >5%"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setting in SETTINGS:
        for parity, half in ((0, "even"), (1, "odd")):
            result = score(photos, setting, parity) | {"photos": half}
            print(
                f"| {setting.name} | " + " | ".join(str(result.get(k, "")) for k in header[1:]) + " |",
                flush=True,
            )


def run_default(samples: list[Sample], threads: int, parity: int | None, int8: bool) -> None:
    """The default photo plate detector end to end on the samples (of one index parity, if given): recall
    per set, wider_dev boxes per photo and boxes over 5%, and seconds per photo (decode excluded)."""
    detector = plate_detector(DetectorConfig(device="cpu", int8=int8), threads=threads)
    print(f"text network: {detector.info.precision}")
    spent: dict[str, list[float]] = defaultdict(list)
    hits: dict[str, int] = defaultdict(int)
    plates: dict[str, int] = defaultdict(int)
    boxes: dict[str, int] = defaultdict(int)
    large: dict[str, int] = defaultdict(int)
    for sample in (s for s in samples if parity is None or s.index % 2 == parity):
        frame = read_image(DATA / sample.image).frame_bgr
        start = time.perf_counter()
        found = detector.detect(frame)
        spent[sample.dataset].append(time.perf_counter() - start)
        truth = np.array(sample.plates_xyxy, float).reshape(-1, 4)
        xyxy = found.xyxy.astype(float)
        hits[sample.dataset] += sum(match(truth, xyxy, found.confidence.astype(float)).claimed)
        plates[sample.dataset] += len(truth)
        boxes[sample.dataset] += len(found)
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        large[sample.dataset] += int((area > 0.05 * frame.shape[0] * frame.shape[1]).sum())
    for name, times in spent.items():
        recall = f"recall {hits[name] / plates[name]:.3f}" if plates[name] else ""
        print(
            f"{name}: {len(times)} photos, {recall} boxes/photo {boxes[name] / len(times):.2f}, "
            f"over 5% {large[name]}, {float(np.mean(times)):.3f} s/photo"
        )


def compare_speed(samples: list[Sample], threads: int) -> None:
    """Seconds per photo of the candidates alone (the text network and shape rules: the cost of the detector
    before issue 9, which ran the same network at the same size) and of the default detector with reading,
    timed one after the other on each photo (decode excluded)."""
    config = DetectorConfig(device="cpu")
    unread, default = PlateCandidates(config, threads=threads), plate_detector(config, threads=threads)
    spent: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for sample in samples:
        frame = read_image(DATA / sample.image).frame_bgr
        start = time.perf_counter()
        unread.detect(frame)
        middle = time.perf_counter()
        default.detect(frame)
        spent[sample.dataset].append((middle - start, time.perf_counter() - middle))
    for name, pairs in spent.items():
        candidates, full = np.mean(pairs, axis=0)
        print(f"{name}: {len(pairs)} photos, candidates {candidates:.3f} s/photo, with reading {full:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["maps", "read", "report", "run", "speed"])
    parser.add_argument(
        "--every", type=int, default=1, help="every N-th photo of each set (maps, read, time)"
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/veil_plate_verify"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parity", type=int, choices=[0, 1], help="`run`: only even or odd photos")
    parser.add_argument("--crop", choices=["box", "line", "rotated"], default="line", help="what is read")
    parser.add_argument("--fp32", action="store_true", help="`run`: the FP32 text network, not the INT8 copy")
    args = parser.parse_args()
    samples = load_samples(args.every)
    if args.command == "maps":
        make_maps(samples, args.cache, args.threads)
    elif args.command == "read":
        read_candidates(samples, args.cache, args.threads, args.crop)
    elif args.command == "speed":
        compare_speed(samples, args.threads)
    elif args.command == "run":
        run_default(samples, args.threads, args.parity, int8=not args.fp32)
    else:
        report(args.cache, args.crop)


if __name__ == "__main__":
    main()
