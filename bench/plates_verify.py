"""Plate verification by reading: permissive text candidates, PP-OCR recognition, keep plate-like text.

Issue 9's first lever, measured on all four plate sets at once (openalpr_us, plates_ro, plates_eg, plates_in)
and on wider_dev (people, no labelled plates: every box there is false). Three steps, each cached under
--cache so settings can be swept without rerunning the networks:

    .venv/bin/python bench/plates_verify.py maps --every 2           # text network at 1280 px, timed
    .venv/bin/python bench/plates_verify.py read --every 2           # permissive lines, each one recognized
    .venv/bin/python bench/plates_verify.py report --every 2         # recall per set, false boxes per photo
    .venv/bin/python bench/plates_verify.py misses --every 2         # why today's default misses plates
    .venv/bin/python bench/plates_verify.py scales --every 2         # other sizes, on plates with no line

`maps` runs the default plate detector's network (photo purpose, 1280 px) once per photo; `read` finds every
text line in the cached map with loose settings, crops it from the photo (rotated, as PP-OCR crops lines),
reads it with rapidocr's PP-OCRv6_rec_small.onnx (as is, and split into top and bottom halves) and stores the
text and per-character confidences; `report` applies each setting of SETTINGS to those lines. Scoring uses
bench/eval_detections.py's greedy matching at IoU >= 0.3. The data (../shared/data/dev) is read in place.
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from eval_detections import match  # bench/ is on sys.path when this file runs as a script
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.onnx import packaged_model
from veil.engine.detectors.plates import PlateDetector, PlateFilter, plate_boxes, plate_like, text_lines
from veil.engine.media.image import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
PLATE_SETS = ("openalpr_us", "plates_ro", "plates_eg", "plates_in")
DATASETS = (*PLATE_SETS, "wider_dev")
SIZE = 1280


@dataclass(frozen=True)
class Sample:
    """One photo and its labelled plates as (N, 4) xyxy pixels (none for wider_dev)."""

    dataset: str
    image: str
    plates_xyxy: tuple[tuple[float, float, float, float], ...]


def load_samples(every: int) -> list[Sample]:
    """Every `every`-th photo (sorted by name) of each dataset, the same subsample for every setting."""
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
        samples += [Sample(name, image, tuple(boxes[(name, image)])) for image in images[::every]]
    return samples


def map_path(cache: Path, sample: Sample) -> Path:
    return cache / "maps" / (sample.image.replace("/", "_") + ".npz")


def make_maps(samples: list[Sample], cache: Path, threads: int) -> None:
    """Runs the default photo plate detector's network; prints seconds per photo per dataset."""
    detector = PlateDetector(DetectorConfig(device="cpu"), max_side=SIZE, threads=threads)
    (cache / "maps").mkdir(parents=True, exist_ok=True)
    spent: dict[str, float] = defaultdict(float)
    for sample in samples:
        frame = read_image(DATA / sample.image).frame_bgr
        start = time.perf_counter()
        prob_map, scale = detector.probability_map(frame)
        detector.plates_from_map(prob_map, scale, frame.shape[1], frame.shape[0])
        spent[sample.dataset] += time.perf_counter() - start
        quantised = np.round(prob_map * 255).astype(np.uint8)
        np.savez_compressed(
            map_path(cache, sample), map=quantised, scale=scale, shape=np.array(frame.shape[:2])
        )
    counts = {name: sum(s.dataset == name for s in samples) for name in DATASETS}
    timing = {name: round(spent[name] / max(counts[name], 1), 3) for name in DATASETS}
    (cache / "maps_time.json").write_text(json.dumps({"s_per_photo": timing, "photos": counts}))
    print(json.dumps({"s_per_photo": timing, "photos": counts}))


# Loose candidate settings for `read`: every line the map shows, of any plausible size and shape.
LOOSE_PIXEL_THRESHOLD = 0.3  # the default's, so default lines are a subset
LOOSE_BOX_THRESHOLD = 0.2
LOOSE_MIN_ASPECT = 0.7
LOOSE_MAX_ASPECT = 15.0
LOOSE_MAX_TILT = 35.0
LOOSE_MIN_HEIGHT = 0.003
LOOSE_MAX_HEIGHT = 0.25
REC_HEIGHT = 48
# Below this aspect a line is a block (two-line plates): minAreaRect's angle means nothing, so tilt is
# ignored and the crop is its upright bounding box.
SQUARE_ASPECT = 1.6


class Reader:
    """PP-OCRv6 small text recognition (rapidocr's packaged ONNX), greedy CTC decoding."""

    def __init__(self, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model = packaged_model("rapidocr", "models/PP-OCRv6_rec_small.onnx")
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map["character"].split("\n")
        self.chars = ["", *meta, " "]

    def read(self, crops: list[npt.NDArray[np.uint8]]) -> list[tuple[str, list[float]]]:
        """Text and per-character confidence of each BGR crop; crops are read in one padded batch."""
        if not crops:
            return []
        widths = [max(8, round(REC_HEIGHT * c.shape[1] / max(c.shape[0], 1))) for c in crops]
        batch_w = min(max(max(widths), 96), 1280)
        batch = np.zeros((len(crops), 3, REC_HEIGHT, batch_w), np.float32)
        for i, (crop, width) in enumerate(zip(crops, widths, strict=True)):
            width = min(width, batch_w)
            resized = cv2.resize(crop, (width, REC_HEIGHT)).astype(np.float32) / 127.5 - 1.0
            batch[i, :, :, :width] = resized.transpose(2, 0, 1)
        probs = self.session.run(None, {self.session.get_inputs()[0].name: batch})[0]
        results = []
        for row in probs:
            best, conf = row.argmax(1), row.max(1)
            keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
            results.append(("".join(self.chars[k] for k in best[keep]), conf[keep].round(3).tolist()))
        return results


def rotated_crop(frame: npt.NDArray[np.uint8], rect_px: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The (cx, cy, w, h, angle) rotated rectangle in frame pixels, cut out upright, long side horizontal."""
    (cx, cy, w, h, angle) = (float(v) for v in rect_px)
    if max(w, h) < SQUARE_ASPECT * min(w, h):
        corners = cv2.boxPoints(((cx, cy), (w, h), angle))
        x0, y0 = np.floor(corners.min(0)).astype(int).clip(0)
        x1, y1 = np.ceil(corners.max(0)).astype(int)
        return frame[y0 : max(y1, y0 + 2), x0 : max(x1, x0 + 2)]
    if h > w:
        w, h, angle = h, w, angle - 90.0
    # The long side's direction nearest horizontal; minAreaRect may report it 180 degrees off (upside down).
    angle = (angle + 90.0) % 180.0 - 90.0
    w, h = max(w, 2.0), max(h, 2.0)
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] += (w / 2 - cx, h / 2 - cy)
    return cv2.warpAffine(
        frame, matrix, (round(w), round(h)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def loose_lines(
    prob_map: npt.NDArray[np.float32], map_long_side: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Text lines passing the loose candidate settings, map pixels, unclipped as PP-OCR does (1.6)."""
    rects, scores = text_lines(prob_map, LOOSE_PIXEL_THRESHOLD, 1.6, LOOSE_BOX_THRESHOLD)
    long_side, short_side = np.maximum(rects[:, 2], rects[:, 3]), np.minimum(rects[:, 2], rects[:, 3])
    tilt = np.where(rects[:, 2] >= rects[:, 3], rects[:, 4], rects[:, 4] - 90.0)
    tilt = np.abs((tilt + 90.0) % 180.0 - 90.0)
    aspect = long_side / np.maximum(short_side, 1e-6)
    frac = short_side / map_long_side
    square = aspect < SQUARE_ASPECT
    keep = (aspect >= LOOSE_MIN_ASPECT) & (aspect <= LOOSE_MAX_ASPECT) & ((tilt <= LOOSE_MAX_TILT) | square)
    keep &= (frac >= LOOSE_MIN_HEIGHT) & (frac <= LOOSE_MAX_HEIGHT)
    return rects[keep], scores[keep]


def read_lines(samples: list[Sample], cache: Path, threads: int) -> None:
    """Finds loose lines in each cached map, reads them (whole, and top and bottom halves), pickles all."""
    reader = Reader(threads)
    photos = []
    spent: dict[str, float] = defaultdict(float)
    spent_halves: dict[str, float] = defaultdict(float)
    for sample in samples:
        saved = np.load(map_path(cache, sample))
        prob_map = saved["map"].astype(np.float32) / 255.0
        scale = float(saved["scale"])
        height, width = (int(v) for v in saved["shape"])
        frame = read_image(DATA / sample.image).frame_bgr
        start = time.perf_counter()
        rects, scores = loose_lines(prob_map, scale * max(width, height))
        crops = [rotated_crop(frame, np.append(r[:4] / scale, r[4])) for r in rects]
        halves = [half for c in crops for half in (c[: max(1, c.shape[0] // 2)], c[c.shape[0] // 2 :])]
        whole = reader.read(crops)
        middle = time.perf_counter()
        split = reader.read(halves)
        spent[sample.dataset] += middle - start
        spent_halves[sample.dataset] += time.perf_counter() - middle
        photos.append(
            {
                "dataset": sample.dataset,
                "image": sample.image,
                "plates": sample.plates_xyxy,
                "scale": scale,
                "size_wh": (width, height),
                "rects": rects,
                "scores": scores,
                "whole": whole,
                "top": split[0::2],
                "bottom": split[1::2],
            }
        )
    counts = {name: sum(s.dataset == name for s in samples) for name in DATASETS}
    timing = {name: round(spent[name] / max(counts[name], 1), 3) for name in DATASETS}
    timing_halves = {name: round(spent_halves[name] / max(counts[name], 1), 3) for name in DATASETS}
    lines = {
        name: round(sum(len(p["rects"]) for p in photos if p["dataset"] == name) / max(counts[name], 1), 1)
        for name in DATASETS
    }
    (cache / "lines.pkl").write_bytes(pickle.dumps(photos))
    (cache / "read_time.json").write_text(
        json.dumps({"s_per_photo": timing, "halves_s_per_photo": timing_halves, "lines_per_photo": lines})
    )
    print(json.dumps({"s_per_photo": timing, "halves_s_per_photo": timing_halves, "lines_per_photo": lines}))


@dataclass(frozen=True)
class Setting:
    """One way to turn read lines into plates.

    Attributes:
        name: row label. box_threshold: lowest line score. rules: shape filter (PlateFilter fields).
        read: None keeps every line passing the shape filter (today's detector); "whole" keeps lines whose
            text reads as a plate; "halves" also accepts a line whose top and bottom halves, read apart and
            joined, read as a plate; "veto" keeps every line except those read confidently (mean confidence
            >= min_conf) as text that is not a plate; "union" keeps today's default lines unread and adds
            the loose lines that "halves" accepts. min_conf: lowest mean confidence of the kept characters.
        min_digits: fewest digits; max_letter_run: most letters in a row.
        outline: None grows lines to plates as today (plate_boxes); (gx, gy, min_aspect) makes the plate
            gx times the line's length and gy times its height, widened to at least min_aspect : 1;
            (gx, gy, min_aspect, switch) keeps today's rule for lines under aspect `switch` (US-like).
        square_free: ignore the tilt of lines under SQUARE_ASPECT (two-line plates).
        read_min_px: lines thinner than this (frame pixels) are kept unread: too small to read.
        square_unread: blocks (aspect under SQUARE_ASPECT, two-line plates) are kept unread.
    """

    name: str
    box_threshold: float
    rules: PlateFilter
    read: str | None = None
    min_conf: float = 0.6
    min_digits: int = 1
    max_letter_run: int = 4
    min_chars: int = 4
    max_chars: int = 10
    outline: tuple[float, ...] | None = None
    square_free: bool = False
    read_min_px: float = 0.0
    square_unread: bool = False


LOOSE = PlateFilter(
    min_aspect=LOOSE_MIN_ASPECT,
    max_aspect=LOOSE_MAX_ASPECT,
    max_angle_deg=LOOSE_MAX_TILT,
    min_height_frac=LOOSE_MIN_HEIGHT,
    max_height_frac=LOOSE_MAX_HEIGHT,
)
# "veto": keep a line unless it reads confidently (mean >= min_conf) as text that is not a plate.
VETO = {"min_chars": 3, "max_letter_run": 99}
LENIENT = {"min_conf": 0.5, "min_chars": 3, "max_letter_run": 99}
# Wider shape ranges: long one-line plates (Indian plates stretched to 640x640 reach aspect 10) and blocks.
WIDE = PlateFilter(min_aspect=0.8, max_aspect=12.0, min_height_frac=0.004, max_height_frac=0.2)
# The best outline rule of the sweep above, for the reading rows.
BEST = {"outline": (1.1, 1.3, 1.0), "square_free": True}
SETTINGS = [
    Setting("today's default (no reading)", 0.4, PlateFilter()),
    Setting("default lines, strict reading", 0.4, PlateFilter(), "whole", min_conf=0.7, min_digits=2),
    Setting("default lines, reading", 0.4, PlateFilter(), "whole"),
    Setting("default lines, lenient reading", 0.4, PlateFilter(), "whole", **LENIENT),
    Setting("default lines, lenient reading, halves", 0.4, PlateFilter(), "halves", **LENIENT),
    Setting("default lines, veto at conf 0.8", 0.4, PlateFilter(), "veto", min_conf=0.8, **VETO),
    Setting("default lines, veto at conf 0.9", 0.4, PlateFilter(), "veto", min_conf=0.9, **VETO),
    Setting("loose 0.2 candidates, no reading", 0.2, LOOSE),
    Setting("loose 0.2, lenient reading", 0.2, LOOSE, "whole", **LENIENT),
    Setting("loose 0.2, lenient reading, halves", 0.2, LOOSE, "halves", **LENIENT),
    Setting(
        "loose 0.2, lenient reading conf 0.3, halves",
        0.2,
        LOOSE,
        "halves",
        **(LENIENT | {"min_conf": 0.3}),
    ),
    Setting("loose 0.2, veto at conf 0.8", 0.2, LOOSE, "veto", min_conf=0.8, **VETO),
    Setting("default lines + loose 0.2 lenient reading", 0.2, LOOSE, "union", **LENIENT),
    *(
        Setting(f"default lines, outline {o}", 0.4, PlateFilter(), outline=o)
        for o in [(1.2, 1.5, 2.0), (1.2, 2.0, 2.0), (1.2, 1.5, 1.0), (1.1, 1.3, 2.0), (1.3, 1.8, 1.5)]
    ),
    *(
        Setting(f"wide {t}, outline {o}", t, WIDE, outline=o, square_free=True)
        for t in (0.4, 0.3)
        for o in [(1.2, 1.5, 2.0), (1.2, 1.5, 1.0), (1.3, 1.8, 1.5)]
    ),
    Setting("wide 0.4, outline (1.1, 1.3, 1.0)", 0.4, WIDE, outline=(1.1, 1.3, 1.0), square_free=True),
    *(
        Setting(f"wide 0.4, outline {o}", 0.4, WIDE, outline=o, square_free=True)
        for o in [(1.1, 1.3, 1.0, 3.0), (1.1, 1.3, 1.0, 3.5), (1.2, 1.5, 1.0, 3.5)]
    ),
    Setting("wide 0.4, outline*, veto 0.8", 0.4, WIDE, "veto", **BEST, min_conf=0.8, **VETO),
    Setting("wide 0.4, outline*, veto 0.9", 0.4, WIDE, "veto", **BEST, min_conf=0.9, **VETO),
    Setting("wide 0.4, outline*, veto 0.7", 0.4, WIDE, "veto", **BEST, min_conf=0.7, **VETO),
    Setting("wide 0.3, outline*, veto 0.8", 0.3, WIDE, "veto", **BEST, min_conf=0.8, **VETO),
    *(
        Setting(
            f"wide {t}, outline*, lenient halves conf {c}, read >= {px} px",
            t,
            WIDE,
            "halves",
            **BEST,
            **(LENIENT | {"min_conf": c}),
            read_min_px=px,
        )
        for t in (0.4, 0.3)
        for c in (0.3, 0.5)
        for px in (0, 12, 20)
    ),
    Setting(
        "wide 0.4, outline*, lenient conf 0.3, whole only",
        0.4,
        WIDE,
        "whole",
        **BEST,
        **(LENIENT | {"min_conf": 0.3}),
    ),
    *(
        Setting(
            f"wide {t}, outline*, lenient halves conf 0.3, blocks unread",
            t,
            WIDE,
            "halves",
            **BEST,
            **(LENIENT | {"min_conf": 0.3}),
            square_unread=True,
        )
        for t in (0.4, 0.3)
    ),
]


def plate_text(text: str, conf: list[float], setting: Setting) -> bool:
    """Whether a reading looks like a registration: ASCII letters and digits in plate-like amounts."""
    kept = [(c.upper(), p) for c, p in zip(text, conf, strict=False) if c.isascii() and c.isalnum()]
    foreign = sum(1 for c in text if c.isalnum() and not c.isascii())
    if not (setting.min_chars <= len(kept) <= setting.max_chars) or foreign > 1:
        return False
    letters = "".join("a" if c.isalpha() else " " for c, _ in kept)
    run = max((len(part) for part in letters.split()), default=0)
    digits = sum(c.isdigit() for c, _ in kept)
    mean_conf = float(np.mean([p for _, p in kept]))
    return digits >= setting.min_digits and run <= setting.max_letter_run and mean_conf >= setting.min_conf


def shaped(rects: npt.NDArray[np.float32], setting: Setting, map_long_side: float) -> npt.NDArray[np.bool_]:
    """plate_like with the setting's rules; with square_free, lines under SQUARE_ASPECT pass at any tilt."""
    keep = plate_like(rects, setting.rules, map_long_side)
    if setting.square_free:
        untilted = replace(setting.rules, max_angle_deg=90.0)
        long_side, short_side = np.maximum(rects[:, 2], rects[:, 3]), np.minimum(rects[:, 2], rects[:, 3])
        square = long_side < SQUARE_ASPECT * short_side
        keep |= square & plate_like(rects, untilted, map_long_side)
    return keep


def outline_boxes(rects: npt.NDArray[np.float32], setting: Setting) -> npt.NDArray[np.float32]:
    """(N, 4) xyxy plate outlines in map pixels around (N, 5) lines, by the setting's outline rule."""
    if setting.outline is None:
        return plate_boxes(rects, setting.rules)
    grow_x, grow_y, min_aspect = setting.outline[:3]
    long_side, short_side = np.maximum(rects[:, 2], rects[:, 3]), np.minimum(rects[:, 2], rects[:, 3])
    # Tilt of the long side from horizontal, 0..90 degrees (minAreaRect's angle is that of its width side).
    tilt = np.where(rects[:, 2] >= rects[:, 3], rects[:, 4], rects[:, 4] - 90.0)
    tilt = np.abs((tilt + 90.0) % 180.0 - 90.0)
    plate_h = short_side * grow_y
    plate_w = np.maximum(long_side * grow_x, plate_h * min_aspect)
    # Squarish blocks: the upright bounding box, grown the same way (their angle is arbitrary).
    square = long_side < SQUARE_ASPECT * short_side
    theta = np.deg2rad(np.where(square, 0.0, tilt))
    cos, sin = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    corners = np.array([cv2.boxPoints(((r[0], r[1]), (r[2], r[3]), r[4])) for r in rects]).reshape(-1, 4, 2)
    box_w = np.where(square, np.ptp(corners[:, :, 0], 1) * grow_x, plate_w * cos + plate_h * sin)
    box_h = np.where(square, np.ptp(corners[:, :, 1], 1) * grow_y, plate_w * sin + plate_h * cos)
    cx, cy = rects[:, 0], rects[:, 1]
    boxes = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], 1).astype(np.float32)
    if len(setting.outline) == 4:
        today = (long_side < setting.outline[3] * short_side) & ~square
        boxes[today] = plate_boxes(rects[today], setting.rules)
    return boxes


def verified(photo: dict[str, Any], setting: Setting) -> npt.NDArray[np.bool_]:
    """Which of a photo's loose lines the setting keeps."""
    scale = photo["scale"]
    keep = (photo["scores"] >= setting.box_threshold) & shaped(
        photo["rects"], setting, scale * max(photo["size_wh"])
    )
    if setting.read is None:
        return keep
    default = (photo["scores"] >= 0.4) & plate_like(
        photo["rects"], PlateFilter(), scale * max(photo["size_wh"])
    )
    thin = np.minimum(photo["rects"][:, 2], photo["rects"][:, 3]) / scale < setting.read_min_px
    if setting.square_unread:
        thin |= np.maximum(photo["rects"][:, 2], photo["rects"][:, 3]) < SQUARE_ASPECT * np.minimum(
            photo["rects"][:, 2], photo["rects"][:, 3]
        )
    for i in np.flatnonzero(keep & ~thin):
        text, conf = photo["whole"][i]
        if setting.read == "veto":
            sure = bool(conf) and float(np.mean(conf)) >= setting.min_conf
            keep[i] = not sure or plate_text(text, conf, replace(setting, min_conf=0.0))
            continue
        if setting.read == "union" and default[i]:
            continue
        ok = plate_text(text, conf, setting)
        if not ok and setting.read in ("halves", "union"):
            (top, top_conf), (bottom, bottom_conf) = photo["top"][i], photo["bottom"][i]
            ok = plate_text(top + bottom, top_conf + bottom_conf, setting)
        keep[i] = ok
    return keep


def score(photos: list[dict[str, Any]], setting: Setting) -> dict[str, Any]:
    """Recall per plate set (greedy, IoU >= 0.3) and, on wider_dev, boxes per photo and boxes over 5%."""
    hits: dict[str, int] = defaultdict(int)
    plates: dict[str, int] = defaultdict(int)
    boxes: dict[str, int] = defaultdict(int)
    large: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    reads = 0
    for photo in photos:
        keep = verified(photo, setting)
        reads += lines_read(photo, setting)
        width, height = photo["size_wh"]
        xyxy = outline_boxes(photo["rects"][keep], setting) / photo["scale"]
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        truth = np.array(photo["plates"], float).reshape(-1, 4)
        matching = match(truth, xyxy.astype(float), photo["scores"][keep].astype(float))
        name = photo["dataset"]
        hits[name] += sum(matching.claimed)
        plates[name] += len(truth)
        boxes[name] += len(xyxy)
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        large[name] += int((area > 0.05 * width * height).sum())
        count[name] += 1
    result: dict[str, Any] = {n: round(hits[n] / plates[n], 3) for n in PLATE_SETS if plates[n]}
    result["wider boxes/photo"] = round(boxes["wider_dev"] / max(count["wider_dev"], 1), 2)
    result["wider >5%"] = large["wider_dev"]
    result["lines read/photo"] = round(reads / max(len(photos), 1), 2)
    return result


def lines_read(photo: dict[str, Any], setting: Setting) -> int:
    """How many of a photo's lines the setting has to read (none without reading)."""
    if setting.read is None:
        return 0
    scale = photo["scale"]
    keep = (photo["scores"] >= setting.box_threshold) & shaped(
        photo["rects"], setting, scale * max(photo["size_wh"])
    )
    keep &= np.minimum(photo["rects"][:, 2], photo["rects"][:, 3]) / scale >= setting.read_min_px
    if setting.read == "union":
        keep &= ~(
            (photo["scores"] >= 0.4)
            & plate_like(photo["rects"], PlateFilter(), scale * max(photo["size_wh"]))
        )
    return int(keep.sum())


def report(cache: Path) -> None:
    """Prints one markdown row per setting of SETTINGS."""
    photos = pickle.loads((cache / "lines.pkl").read_bytes())
    header = ["setting", *PLATE_SETS, "wider boxes/photo", "wider >5%", "lines read/photo"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setting in SETTINGS:
        result = score(photos, setting)
        print(
            f"| {setting.name} | " + " | ".join(str(result.get(k, "")) for k in header[1:]) + " |", flush=True
        )


def miss_causes(samples: list[Sample], cache: Path) -> None:
    """Why today's default detector misses plates: prints, per plate set, misses by the first failing stage.

    A miss has "no line" when no text line (any score, any shape) is centred inside the labelled plate;
    "score" when such lines all score under 0.4; "shape" when the plate filter rejects them all; "outline"
    when a kept line's grown outline overlaps the plate at IoU < 0.3.
    """
    detector = PlateDetector(DetectorConfig(device="cpu"), threads=1)
    causes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for sample in (s for s in samples if s.dataset in PLATE_SETS):
        saved = np.load(map_path(cache, sample))
        scale = float(saved["scale"])
        height, width = (int(v) for v in saved["shape"])
        rects, scores = text_lines(saved["map"].astype(np.float32) / 255.0, 0.3, 1.6, 0.0)
        found = detector.plates_from_lines(rects, scores, scale, width, height)
        truth = np.array(sample.plates_xyxy, float).reshape(-1, 4)
        claimed = match(truth, found.xyxy.astype(float), found.confidence.astype(float)).claimed
        shape_ok = plate_like(rects, PlateFilter(), scale * max(width, height))
        tally = causes[sample.dataset]
        for plate, hit in zip(truth, claimed, strict=True):
            tally["plates"] += 1
            cx, cy = rects[:, 0] / scale, rects[:, 1] / scale
            inside = (cx >= plate[0]) & (cx <= plate[2]) & (cy >= plate[1]) & (cy <= plate[3])
            if hit:
                tally["found"] += 1
            elif not inside.any():
                tally["no line"] += 1
            elif not (scores[inside] >= 0.4).any():
                tally["score"] += 1
            elif not (shape_ok & inside & (scores >= 0.4)).any():
                tally["shape"] += 1
            else:
                tally["outline"] += 1
    for name, tally in causes.items():
        print(name, dict(tally))


def extra_scales(samples: list[Sample], cache: Path, sizes: list[int], threads: int) -> None:
    """For plates with no loose line centred in them at 1280 px: how many get one at other input sizes.

    Runs the text network at each size only on the photos holding such plates; a plate counts as found when a
    line scoring >= LOOSE_BOX_THRESHOLD (any shape) is centred inside it. Prints counts per set and s/photo.
    """
    photos = pickle.loads((cache / "lines.pkl").read_bytes())
    lost = []
    for photo in (p for p in photos if p["dataset"] in PLATE_SETS):
        for plate in np.array(photo["plates"], float).reshape(-1, 4):
            if not _centred(photo["rects"], photo["scores"], photo["scale"], plate):
                lost.append((photo, plate))
    print(f"plates with no loose line at {SIZE} px: {len(lost)}")
    for size in sizes:
        detector = PlateDetector(DetectorConfig(device="cpu"), max_side=size, threads=threads)
        maps: dict[str, tuple[npt.NDArray[np.float32], float]] = {}
        found: dict[str, int] = defaultdict(int)
        spent = 0.0
        for photo, plate in lost:
            if photo["image"] not in maps:
                frame = read_image(DATA / photo["image"]).frame_bgr
                start = time.perf_counter()
                maps[photo["image"]] = detector.probability_map(frame)
                spent += time.perf_counter() - start
            prob_map, scale = maps[photo["image"]]
            rects, scores = text_lines(prob_map, LOOSE_PIXEL_THRESHOLD, 1.6, 0.0)
            found[photo["dataset"]] += _centred(rects, scores, scale, plate)
        print(f"{size} px: found a line for {dict(found)}; {spent / max(len(maps), 1):.3f} s/photo")


def _centred(
    rects: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    scale: float,
    plate: npt.NDArray[np.float64],
) -> bool:
    """Whether a line scoring >= LOOSE_BOX_THRESHOLD has its centre inside the xyxy plate (frame pixels)."""
    cx, cy = rects[:, 0] / scale, rects[:, 1] / scale
    inside = (cx >= plate[0]) & (cx <= plate[2]) & (cy >= plate[1]) & (cy <= plate[3])
    return bool((inside & (scores >= LOOSE_BOX_THRESHOLD)).any())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["maps", "read", "report", "misses", "scales"])
    parser.add_argument("--every", type=int, default=2, help="every N-th photo of each dataset")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/veil_plate_verify"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[640, 960, 1920], help="for `scales`")
    args = parser.parse_args()
    samples = load_samples(args.every)
    if args.command == "maps":
        make_maps(samples, args.cache, args.threads)
    elif args.command == "read":
        read_lines(samples, args.cache, args.threads)
    elif args.command == "scales":
        extra_scales(samples, args.cache, args.sizes, args.threads)
    elif args.command == "misses":
        miss_causes(samples, args.cache)
    else:
        report(args.cache)


if __name__ == "__main__":
    main()
