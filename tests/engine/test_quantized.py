"""INT8 copies derived from FP32 models: drawn calibration frames, the QDQ build, caching, and failures.

A small convolutional model is generated here; the real networks are derived once each (weights tests),
with fewer calibration frames than the shipped recipes so the suite stays quick.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from veil.engine.detectors import quantized
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.detectors.onnx import create_session
from veil.engine.detectors.plates.candidates import TextLineFinder
from veil.engine.detectors.quantized import (
    CENTERFACE_RECIPE,
    NETWORKS,
    PLATE_TEXT_RECIPE,
    Int8Recipe,
    calibration_frames,
    default_cache_dir,
    derived_int8,
    int8_model,
    int8_model_of,
    model_for,
    precision_of,
)
from veil.engine.errors import ModelError

Tensor = npt.NDArray[np.float32]

SMALL = Int8Recipe("tiny", per_channel=True, method="minmax", frames=4, size_wh=(64, 48))


def tiny_model(seed: int = 0) -> bytes:
    """Conv 3->8, ReLU, depthwise 3x3, ReLU, 1x1 conv to one channel, sigmoid; symbolic height and width."""
    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)),
        "w2": rng.normal(0, 0.3, (8, 1, 3, 3)),
        "w3": rng.normal(0, 0.3, (1, 8, 1, 1)),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="first"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], name="last"),
        helper.make_node("Sigmoid", ["c3"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "h", "w"])],
        [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]).SerializeToString())


def to_tensor(frame: npt.NDArray[np.uint8]) -> Tensor:
    return (frame.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]


def run(model: Path | bytes, tensor: Tensor) -> Tensor:
    session = create_session(model, "cpu", threads=1)
    return np.asarray(session.run(None, {"x": tensor})[0], np.float32)


def test_calibration_frames_are_seeded_sized_and_busy() -> None:
    frames = calibration_frames(3, (96, 64))
    again = calibration_frames(3, (96, 64))
    other = calibration_frames(3, (96, 64), seed=1)

    assert [f.shape for f in frames] == [(64, 96, 3)] * 3
    assert all(f.dtype == np.uint8 for f in frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(frames, other, strict=True))
    # Not flat: edges and spread in every frame, as text and texture give.
    for frame in frames:
        assert frame.std() > 15
        assert np.abs(cv2.Laplacian(frame, cv2.CV_32F)).mean() > 2


def test_the_int8_copy_is_quantized_close_and_says_so(tmp_path: Path) -> None:
    """GIVEN an FP32 model WHEN its INT8 copy is derived THEN it runs through Quantize/DequantizeLinear,
    gives nearly the same output on a frame it was not calibrated on, and reports INT8 where the FP32
    model reports FP32."""
    source = tiny_model()

    path = int8_model(source, SMALL, to_tensor, tmp_path)

    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    tensor = to_tensor(calibration_frames(1, (80, 40), seed=7)[0])
    assert np.abs(run(path, tensor) - run(source, tensor)).max() < 0.05
    assert precision_of(create_session(path, "cpu")) == "INT8"
    assert precision_of(create_session(source, "cpu")) == "FP32"


@pytest.mark.parametrize(
    ("head", "tail", "float_convs"),
    [
        pytest.param(0, 0, set(), id="all-quantized"),
        pytest.param(1, 0, {"first"}, id="first-node-float"),
        pytest.param(0, 2, {"last"}, id="sigmoid-and-last-conv-float"),
        pytest.param(2, 2, {"first", "last"}, id="both-ends-float"),
    ],
)
def test_float_head_and_tail_keep_their_weights_in_float(
    tmp_path: Path, head: int, tail: int, float_convs: set[str]
) -> None:
    path = int8_model(tiny_model(), replace(SMALL, float_head=head, float_tail=tail), to_tensor, tmp_path)

    graph = onnx.load(path).graph
    weights = {tensor.name for tensor in graph.initializer}
    # A quantized conv takes its weights from a DequantizeLinear node; a float one straight from the file.
    convs = {node.name: node for node in graph.node if node.op_type == "Conv"}
    assert {name for name in ("first", "last") if convs[name].input[1] in weights} == float_convs


def test_a_derived_copy_is_reused_and_any_change_derives_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = int8_model(tiny_model(), SMALL, to_tensor, tmp_path)
    written = first.stat().st_mtime_ns

    def fail(*args: object) -> Path:
        raise AssertionError("derived again")

    monkeypatch.setattr(quantized, "_quantize", fail)
    assert int8_model(tiny_model(), SMALL, to_tensor, tmp_path) == first
    assert first.stat().st_mtime_ns == written
    monkeypatch.undo()

    other_source = int8_model(tiny_model(seed=1), SMALL, to_tensor, tmp_path)
    other_recipe = int8_model(tiny_model(), replace(SMALL, per_channel=False), to_tensor, tmp_path)
    assert len({first, other_source, other_recipe}) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (first, other_source, other_recipe)
    )


@pytest.mark.parametrize("source", [b"", b"not a model"])
def test_an_unusable_source_is_a_model_error_and_leaves_nothing(tmp_path: Path, source: bytes) -> None:
    with pytest.raises(ModelError, match="cannot derive the INT8 tiny model"):
        int8_model(source, SMALL, to_tensor, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_is_a_model_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ModelError, match="cannot derive"):
        int8_model(tiny_model(), SMALL, to_tensor, blocker / "models")


def plate_frame() -> npt.NDArray[np.uint8]:
    """A grey 1280x720 frame with one dark-on-white 7-character plate near the middle."""
    frame = np.full((720, 1280, 3), 120, np.uint8)
    cv2.rectangle(frame, (520, 330), (760, 390), (245, 245, 245), -1)
    cv2.putText(frame, "AB12CDE", (535, 375), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (20, 20, 20), 3, cv2.LINE_AA)
    return frame


@pytest.mark.weights
def test_the_plate_text_copy_finds_the_plate_the_fp32_model_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantized, "PLATE_TEXT_RECIPE", replace(PLATE_TEXT_RECIPE, frames=4))
    path = int8_model_of("plate text", tmp_path)

    found = {
        precision: TextLineFinder(DetectorConfig(device="cpu", model_path=model), max_side=1280).find(
            plate_frame()
        )
        for precision, model in (("FP32", None), ("INT8", path))
    }

    assert len(found["INT8"]) == len(found["FP32"]) == 1
    assert np.abs(found["INT8"].rects[0, :2] - found["FP32"].rects[0, :2]).max() < 4  # centre, pixels


@pytest.mark.weights
def test_the_centerface_copy_loads_as_a_replacement_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN CenterFace's INT8 copy WHEN the detector opens it as its model file THEN it runs at any frame
    size (its input stayed symbolic through quantization), reports INT8, and its score head (last conv and
    sigmoid) stayed in float: quantized, it saturates, since drawn frames hold no face to calibrate on."""
    recipe = replace(CENTERFACE_RECIPE, frames=2, size_wh=(320, 192))
    monkeypatch.setattr(quantized, "CENTERFACE_RECIPE", recipe)
    path = int8_model_of("CenterFace", tmp_path)

    detector = CenterFaceDetector(DetectorConfig(device="cpu", model_path=path), scales=(1.0,))
    for height, width in ((96, 160), (250, 333)):
        found = detector.detect(np.zeros((height, width, 3), np.uint8))
        assert found.xyxy.shape == (len(found), 4)
    assert precision_of(detector._session) == "INT8"
    graph = onnx.load(path).graph
    producer = {output: node for node in graph.node for output in node.output}
    sigmoid = producer[graph.output[0].name]
    conv = producer[sigmoid.input[0]]
    assert (sigmoid.op_type, conv.op_type) == ("Sigmoid", "Conv")
    assert conv.input[1] in {tensor.name for tensor in graph.initializer}


@pytest.mark.weights
@pytest.mark.usefixtures("small_int8_recipes")
def test_detectors_open_their_derived_int8_copy_on_the_cpu_and_fp32_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN an empty model cache WHEN the detectors load THEN they run FP32; once `veil models derive` has
    filled it they run INT8, unless the config asks for FP32 or names its own model file."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def precisions(**config: object) -> tuple[str, str]:
        settings = DetectorConfig(device="cpu", **config)  # type: ignore[arg-type]
        face = CenterFaceDetector(settings, scales=(1.0,)).info.precision
        return face, TextLineFinder(settings, max_side=640).precision

    assert precisions() == ("FP32", "FP32")
    assert [derived_int8(network) for network in NETWORKS] == [None, None]

    copies = [int8_model_of(network, default_cache_dir()) for network in NETWORKS]

    assert [derived_int8(network) for network in NETWORKS] == copies
    assert precisions() == ("INT8", "INT8")
    assert precisions(int8=False) == ("FP32", "FP32")
    own, packaged = tmp_path / "own.onnx", tmp_path / "packaged.onnx"
    assert model_for("CenterFace", DetectorConfig(model_path=own), packaged) == own
