"""Face verification on wider_dev: CenterFace's boxes, checked by MTCNN's O-Net (or R-Net), swept offline.

Issue 9, face part. Three steps, each cached under --cache so cuts can be swept without rerunning networks:

    taskset -c 1 .venv/bin/python bench/face_verify.py boxes     # CenterFace at threshold 0.2, photo + video
    taskset -c 1 .venv/bin/python bench/face_verify.py verify    # O-Net and R-Net face probability per box
    .venv/bin/python bench/face_verify.py report                 # recall and unmatched/photo per setting

`boxes` runs CenterFace once per photo with the photo setting (passes 0.5x/1x/2x) and the video key-frame
setting (one pass, 640 px), both at threshold 0.2, and stores every box, its score and the model time.
`verify` crops every box scoring under MAX_CHECK (square around the box, as MTCNN does, at each crop scale of
CROP_SCALES) and stores the verifier's face probability. `report` keeps a box when it scores at least the
detector threshold and either scores at least `check_below` or the verifier gives it at least `cut`, then
scores the kept boxes with bench/eval_detections.py's greedy matching at IoU >= 0.3, on all photos and on
the odd and even ones (sorted by name) apart. The data (../shared/data/dev) is read in place.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from eval_detections import SUBSETS, Tally, Truth, read_manifest, score_image, summarize  # bench/ on sys.path
from veil.engine.boxes import box_iou
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig, Purpose
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.detectors.verified import VerifiedDetector
from veil.engine.media.image import read_image
from veil.engine.verifiers.onet import ONET, RNET, MTCNNNet, MTCNNVerifier, NetSpec, square_crops

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
DATASET = "wider_dev"
CACHE_THRESHOLD = 0.2
PURPOSES: tuple[Purpose, ...] = ("photo", "video")
# Shipped thresholds of each setting (centerface.DEFAULT_THRESHOLD; the video key-frame setting).
DEFAULT_THRESHOLDS = {"photo": 0.24, "video": 0.3}

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Boxes:
    """CenterFace's boxes for every photo, flattened: photo i owns rows offsets[i]:offsets[i + 1]."""

    images: list[str]
    offsets: npt.NDArray[np.int64]
    xyxy: FloatArray
    scores: FloatArray
    seconds: npt.NDArray[np.float64]

    def of(self, index: int) -> slice:
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))


@functools.cache
def wider_truth() -> dict[tuple[str, str], dict[str, Truth]]:
    return read_manifest(DATA / "manifest.csv", DATASET)


def wider_images() -> list[str]:
    """wider_dev photos, sorted by name."""
    return sorted(image for dataset, image in wider_truth())


def boxes_path(cache: Path, purpose: str) -> Path:
    return cache / f"boxes_{purpose}.npz"


def load_boxes(cache: Path, purpose: str) -> Boxes:
    data = np.load(boxes_path(cache, purpose))
    return Boxes(list(data["images"]), data["offsets"], data["xyxy"], data["scores"], data["seconds"])


def make_boxes(cache: Path) -> None:
    """Runs CenterFace at CACHE_THRESHOLD on every photo, in each setting; prints images/s (model time)."""
    images = wider_images()
    cache.mkdir(parents=True, exist_ok=True)
    for purpose in PURPOSES:
        detector = CenterFaceDetector(
            DetectorConfig(device="cpu", threshold=CACHE_THRESHOLD, purpose=purpose)
        )
        found: list[Detections] = []
        seconds = []
        for name in images:
            frame = read_image(DATA / name).frame_bgr
            start = time.perf_counter()
            found.append(detector.detect(frame))
            seconds.append(time.perf_counter() - start)
        counts = np.array([len(f) for f in found])
        np.savez(
            boxes_path(cache, purpose),
            images=np.array(images),
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            xyxy=np.concatenate([f.xyxy for f in found]),
            scores=np.concatenate([f.confidence for f in found]),
            seconds=np.array(seconds),
        )
        print(json.dumps({"purpose": purpose, "images_per_s": round(len(images) / sum(seconds), 2)}))


# Halves of the photos sorted by name, to check that a cut tuned on all of them is not fitted to noise.
PARTS = {"all": slice(None), "odd": slice(0, None, 2), "even": slice(1, None, 2)}
# Recall floors: deface 1.5.0 with its defaults, per WIDER subset (BENCHMARKS.md, "Faces").
DEFACE = {"easy": 0.948, "medium": 0.935, "hard": 0.859}
THRESHOLDS = (0.2, 0.22, 0.24, 0.26, 0.28, 0.3, 0.35)
CHECK_BELOW = (0.3, 0.4, 0.5, 0.6, 0.8, 1.01)
CUTS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.98)

# Verifiers measured: (name, net, crop scale). The crop is a square of `scale` times the box's longer side.
VERIFIERS = (
    ("onet", ONET, 1.0),
    ("onet", ONET, 1.2),
    ("onet", ONET, 1.4),
    ("rnet", RNET, 1.0),
    ("rnet", RNET, 1.2),
)


def probabilities_path(cache: Path, purpose: str) -> Path:
    return cache / f"probabilities_{purpose}.npz"


def make_probabilities(cache: Path) -> None:
    """Face probability of every cached box from each verifier of VERIFIERS; prints the cost per box."""
    nets = {name: MTCNNNet(spec, "cpu", None, threads=1) for name, spec, _ in VERIFIERS}
    for purpose in PURPOSES:
        boxes = load_boxes(cache, purpose)
        found: dict[str, list[FloatArray]] = {key(v): [] for v in VERIFIERS}
        spent = dict.fromkeys(found, 0.0)
        for index, name in enumerate(boxes.images):
            frame = read_image(DATA / name).frame_bgr
            xyxy = boxes.xyxy[boxes.of(index)]
            for verifier in VERIFIERS:
                net_name, spec, scale = verifier
                start = time.perf_counter()
                crops = square_crops(frame, xyxy, spec.input_side, scale)
                found[key(verifier)].append(nets[net_name].face_probability(crops))
                spent[key(verifier)] += time.perf_counter() - start
        np.savez(probabilities_path(cache, purpose), **{k: np.concatenate(v) for k, v in found.items()})
        per_box = {k: round(1000 * v / max(len(boxes.scores), 1), 3) for k, v in spent.items()}
        print(json.dumps({"purpose": purpose, "boxes": len(boxes.scores), "ms_per_box": per_box}))
        (cache / f"verify_time_{purpose}.json").write_text(json.dumps(per_box))


def key(verifier: tuple[str, NetSpec, float]) -> str:
    return f"{verifier[0]}@{verifier[2]}"


@dataclass(frozen=True)
class Setting:
    """Which boxes are kept: score >= threshold, and score >= check_below or verifier probability >= cut."""

    threshold: float
    verifier: str | None = None
    check_below: float = 0.0
    cut: float = 0.0

    def label(self) -> str:
        if self.verifier is None:
            return f"thr {self.threshold:g}"
        return f"thr {self.threshold:g}, {self.verifier} on < {self.check_below:g}, cut {self.cut:g}"


def evaluate(
    boxes: Boxes, probabilities: Mapping[str, FloatArray], setting: Setting, part: str = "all"
) -> dict[str, Any]:
    """Recall per WIDER subset, unmatched/photo and checked boxes/photo over the photos of `part`."""
    truth = wider_truth()
    kept = boxes.scores >= setting.threshold
    checked = kept & (boxes.scores < setting.check_below)
    if setting.verifier is not None:
        kept &= ~checked | (probabilities[setting.verifier] >= setting.cut)
    tally = Tally()
    photos = range(len(boxes.images))[PARTS[part]]
    for index in photos:
        rows = boxes.of(index)
        found = (boxes.xyxy[rows][kept[rows]].astype(float), boxes.scores[rows][kept[rows]].astype(float))
        score_image(tally, truth[(DATASET, boxes.images[index])]["face"], found)
    summary = summarize(tally)
    recall = summary["recall"]
    return {
        **{name: recall[name] for name in SUBSETS},
        "unmatched": summary["unmatched_per_image"],
        "checked": round(sum(int(checked[boxes.of(i)].sum()) for i in photos) / len(photos), 2),
    }


def report(cache: Path, purpose: str, chosen: list[Setting]) -> None:
    """Prints plain thresholds, the best verified setting per verifier and threshold, `chosen` by half.

    Photo: the fewest unmatched boxes with recall at or above deface on every subset. Video: the best hard
    recall with no more unmatched boxes, and no less easy and medium recall, than today's setting.
    """
    boxes = load_boxes(cache, purpose)
    probabilities = dict(np.load(probabilities_path(cache, purpose)))
    # Both networks must doubt a box: the geometric mean of their face probabilities.
    probabilities["onet*rnet"] = np.sqrt(probabilities["onet@1.0"] * probabilities["rnet@1.0"])
    cost = json.loads((cache / f"verify_time_{purpose}.json").read_text())
    cost["onet*rnet"] = cost["onet@1.0"] + cost["rnet@1.0"]
    seconds = boxes.seconds.mean()
    print(f"{purpose}: CenterFace {1 / seconds:.2f} img/s; verifier ms/box {cost}")
    print("separation of faces from other boxes scoring 0.22-0.5 (AUC):", separation(boxes, probabilities))
    print(f"{'setting':58} easy  medium hard   unmatched checked/photo img/s (estimated)")
    for threshold in THRESHOLDS:
        show(Setting(threshold), evaluate(boxes, probabilities, Setting(threshold)), 1 / seconds)
    today = evaluate(boxes, probabilities, Setting(DEFAULT_THRESHOLDS[purpose]))
    floor = DEFACE if purpose == "photo" else {name: today[name] for name in ("easy", "medium")}
    for verifier in probabilities:
        for threshold in THRESHOLDS[:4]:
            grid = [Setting(threshold, verifier, below, cut) for below in CHECK_BELOW for cut in CUTS]
            results = [(setting, evaluate(boxes, probabilities, setting)) for setting in grid]
            passing = [(s, r) for s, r in results if all(r[name] >= low for name, low in floor.items())]
            if purpose == "video":
                passing = [(s, r) for s, r in passing if r["unmatched"] <= today["unmatched"]]
            objective = (lambda r: r["unmatched"]) if purpose == "photo" else (lambda r: -r["hard"])
            if passing:
                setting, result = min(passing, key=lambda pair: objective(pair[1]))
                show(setting, result, 1 / (seconds + result["checked"] * cost[verifier] / 1000))
    for setting in chosen:
        # Is the verifier better than a higher threshold? The plain threshold leaving as many unmatched boxes.
        unmatched = evaluate(boxes, probabilities, setting)["unmatched"]
        plain = min(
            (Setting(round(t, 3)) for t in np.arange(0.2, 0.4, 0.005)),
            key=lambda s: abs(evaluate(boxes, probabilities, s)["unmatched"] - unmatched),
        )
        for shown in (setting, plain):
            for part in PARTS:
                result = evaluate(boxes, probabilities, shown, part)
                extra = result["checked"] * cost[shown.verifier] / 1000 if shown.verifier else 0.0
                show(shown, result, 1 / (seconds + extra), part)


def separation(boxes: Boxes, probabilities: Mapping[str, FloatArray]) -> dict[str, float]:
    """AUC of the detector score and of each verifier for boxes scoring 0.22-0.5, a face being a box that
    overlaps a labelled one at IoU >= 0.3."""
    face = np.zeros(len(boxes.scores), bool)
    for index, name in enumerate(boxes.images):
        labelled = np.array(wider_truth()[(DATASET, name)]["face"].xyxy, float).reshape(-1, 4)
        rows = boxes.of(index)
        if len(labelled) and rows.stop > rows.start:
            face[rows] = box_iou(boxes.xyxy[rows].astype(float), labelled).max(axis=1) >= 0.3
    band = (boxes.scores >= 0.22) & (boxes.scores < 0.5)
    signals = {"score": boxes.scores, **probabilities}
    return {name: round(auc(values[band], face[band]), 3) for name, values in signals.items()}


def auc(values: npt.NDArray[Any], positive: npt.NDArray[np.bool_]) -> float:
    """Chance that a random positive ranks above a random negative (Mann-Whitney; ties by order)."""
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    hits, misses = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - hits * (hits - 1) / 2) / (hits * misses))


def show(setting: Setting, result: dict[str, Any], images_per_s: float, part: str = "all") -> None:
    figures = " ".join(f"{result[name]:.3f}" for name in SUBSETS)
    name = setting.label() + ("" if part == "all" else f" [{part}]")
    print(f"{name:58} {figures}  {result['unmatched']:5.2f}  {result['checked']:5.2f}  {images_per_s:5.2f}")


def parse_setting(text: str) -> Setting:
    """THRESHOLD[,VERIFIER,CHECK_BELOW,CUT], e.g. 0.22,onet@1.2,0.5,0.3."""
    parts = text.split(",")
    if len(parts) == 1:
        return Setting(float(parts[0]))
    return Setting(float(parts[0]), parts[1], float(parts[2]), float(parts[3]))


def engine_check(cache: Path, setting: Setting, every: int) -> None:
    """Runs VerifiedDetector with `setting` on every `every`-th photo: times it, and checks that it keeps the
    boxes `report` keeps for that setting (the bench rule is the engine's)."""
    if setting.verifier is None or not setting.verifier.startswith("onet@"):
        raise SystemExit("engine: give an O-Net setting, e.g. --show 0.22,onet@1.0,0.4,0.05")
    boxes = load_boxes(cache, "photo")
    probabilities = dict(np.load(probabilities_path(cache, "photo")))
    plain = CenterFaceDetector(DetectorConfig(device="cpu", threshold=setting.threshold))
    verifier = MTCNNVerifier("cpu", setting.cut, crop_scale=float(setting.verifier.split("@")[1]))
    verified = VerifiedDetector(plain, verifier, setting.check_below)
    spent = {"plain": 0.0, "verified": 0.0}
    same = 0
    photos = range(0, len(boxes.images), every)
    for index in photos:
        frame = read_image(DATA / boxes.images[index]).frame_bgr
        for name, detector in (("plain", plain), ("verified", verified)):
            start = time.perf_counter()
            found = detector.detect(frame)
            spent[name] += time.perf_counter() - start
        rows = boxes.of(index)
        scores, probability = boxes.scores[rows], probabilities[setting.verifier][rows]
        kept = (scores >= setting.threshold) & (
            (scores >= setting.check_below) | (probability >= setting.cut)
        )
        same += np.allclose(np.sort(found.confidence), np.sort(scores[kept]), atol=1e-4)
    rates = {name: round(len(photos) / t, 2) for name, t in spent.items()}
    print(json.dumps({"photos": len(photos), "same_boxes_as_report": same, "images_per_s": rates}))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=["boxes", "verify", "report", "engine"])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/veil_face_verify"))
    parser.add_argument("--purpose", choices=PURPOSES, default="photo", help="report: which setting's boxes")
    parser.add_argument(
        "--show", type=parse_setting, action="append", default=[], help="report: a setting to show by half"
    )
    parser.add_argument("--every", type=int, default=10, help="engine: every N-th photo")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.step == "boxes":
        make_boxes(args.cache)
    elif args.step == "verify":
        make_probabilities(args.cache)
    elif args.step == "engine":
        engine_check(args.cache, args.show[0], args.every)
    else:
        report(args.cache, args.purpose, args.show)


if __name__ == "__main__":
    main()
