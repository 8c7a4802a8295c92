"""MTCNN O-Net verifier: the torch-free weights reader, the ONNX graph against a numpy forward pass, the
square crops, and load failures.

The reference forward below is written from facenet-pytorch's `ONet.forward` / `RNet.forward` (conv, PReLU,
ceil-mode max pooling, flatten after permute(0, 3, 2, 1), dense, softmax) with numpy alone, so a wrong
layer order, pooling mode, flatten order or weight layout in the ONNX graph shows as a different output.
"""

from __future__ import annotations

import collections
import math
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from veil.engine.detections import Detections
from veil.engine.errors import ModelError
from veil.engine.verifiers.base import Verifier
from veil.engine.verifiers.onet import (
    ONET,
    RNET,
    MTCNNVerifier,
    NetSpec,
    mtcnn_onnx,
    packaged_weights,
    read_torch_state,
    square_crops,
)

FloatArray = npt.NDArray[np.float32]

# Layer shapes of facenet-pytorch's ONet and RNet: name -> (out, in, kernel) for convs, (out, in) for dense.
SHAPES = {
    "onet.pt": {
        "conv1": (32, 3, 3),
        "conv2": (64, 32, 3),
        "conv3": (64, 64, 3),
        "conv4": (128, 64, 2),
        "dense5": (256, 1152),
        "dense6_1": (2, 256),
    },
    "rnet.pt": {
        "conv1": (28, 3, 3),
        "conv2": (48, 28, 3),
        "conv3": (64, 48, 2),
        "dense4": (128, 576),
        "dense5_1": (2, 128),
    },
}


def random_state(spec: NetSpec, seed: int = 0) -> dict[str, FloatArray]:
    """A state dict of `spec`'s shapes; weights scaled by fan-in so that outputs stay away from 0 and 1."""
    rng = np.random.default_rng(seed)
    state: dict[str, FloatArray] = {}
    for name, shape in SHAPES[spec.weights].items():
        full = (*shape, shape[2]) if len(shape) == 3 else shape  # conv kernels are square
        state[f"{name}.weight"] = (rng.normal(size=full) / math.sqrt(math.prod(full[1:]))).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(scale=0.1, size=shape[0]).astype(np.float32)
    for conv, prelu, _ in spec.convs:
        state[f"{prelu}.weight"] = rng.uniform(0, 0.5, SHAPES[spec.weights][conv][0]).astype(np.float32)
    linear, prelu = spec.dense
    state[f"{prelu}.weight"] = rng.uniform(0, 0.5, SHAPES[spec.weights][linear][0]).astype(np.float32)
    return state


def reference_forward(
    state: dict[str, FloatArray], spec: NetSpec, x: FloatArray, flatten_order: tuple[int, ...] = (0, 3, 2, 1)
) -> FloatArray:
    """(N, 2) softmax of (N, 3, side, side) input, in float64 numpy; `flatten_order` as facenet-pytorch's."""
    x = x.astype(np.float64)
    for conv, prelu, pool in spec.convs:
        x = _prelu(_conv(x, state[f"{conv}.weight"], state[f"{conv}.bias"]), state[f"{prelu}.weight"])
        if pool is not None:
            x = _max_pool_ceil(x, *pool)
    x = x.transpose(flatten_order).reshape(len(x), -1)
    linear, prelu = spec.dense
    x = _prelu(x @ state[f"{linear}.weight"].T + state[f"{linear}.bias"], state[f"{prelu}.weight"])
    logits = x @ state[f"{spec.head}.weight"].T + state[f"{spec.head}.bias"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _conv(x: npt.NDArray[np.float64], weight: FloatArray, bias: FloatArray) -> npt.NDArray[np.float64]:
    k = weight.shape[2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # (N, C, H', W', k, k)
    out: npt.NDArray[np.float64] = np.einsum("nchwij,ocij->nohw", windows, weight) + bias[None, :, None, None]
    return out


def _prelu(x: npt.NDArray[np.float64], slope: FloatArray) -> npt.NDArray[np.float64]:
    per_channel = slope.reshape(1, -1, *([1] * (x.ndim - 2)))
    return np.where(x > 0, x, x * per_channel)


def _max_pool_ceil(x: npt.NDArray[np.float64], kernel: int, stride: int) -> npt.NDArray[np.float64]:
    # torch's ceil_mode: windows may hang over the bottom/right edge, as long as each starts inside.
    size = x.shape[2]
    out = math.ceil((size - kernel) / stride) + 1
    padded = np.full((*x.shape[:2], (out - 1) * stride + kernel, (out - 1) * stride + kernel), -np.inf)
    padded[:, :, :size, :size] = x
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(2, 3))
    pooled: npt.NDArray[np.float64] = windows[:, :, ::stride, ::stride].max(axis=(4, 5))
    return pooled


def onnx_forward(state: dict[str, FloatArray], spec: NetSpec, x: FloatArray) -> FloatArray:
    session = ort.InferenceSession(mtcnn_onnx(state, spec), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"input": x})
    return np.asarray(probabilities, np.float32)


@pytest.mark.parametrize("spec", [ONET, RNET], ids=["onet", "rnet"])
def test_onnx_graph_equals_the_reference_forward_on_random_weights(spec: NetSpec) -> None:
    state = random_state(spec)
    x = np.random.default_rng(1).uniform(-1, 1, (6, 3, spec.input_side, spec.input_side)).astype(np.float32)

    expected = reference_forward(state, spec, x)

    found = onnx_forward(state, spec, x)
    np.testing.assert_allclose(found, expected, atol=1e-5)
    # The comparison can fail: flattening in plain (N, C, H, W) order gives other outputs.
    assert np.abs(found - reference_forward(state, spec, x, flatten_order=(0, 1, 2, 3))).max() > 1e-3


@pytest.mark.weights
@pytest.mark.parametrize("spec", [ONET, RNET], ids=["onet", "rnet"])
def test_shipped_weights_load_and_match_the_reference(spec: NetSpec) -> None:
    state = read_torch_state(packaged_weights(spec.weights))
    for name, shape in SHAPES[spec.weights].items():
        assert state[f"{name}.weight"].shape[: len(shape)] == shape
    x = np.random.default_rng(3).uniform(-1, 1, (8, 3, spec.input_side, spec.input_side)).astype(np.float32)

    np.testing.assert_allclose(onnx_forward(state, spec, x), reference_forward(state, spec, x), atol=1e-5)


def write_legacy_state(path: Path, state: dict[str, FloatArray], monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes `state` in torch.save's legacy layout, naming torch's classes through stand-in modules."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        __module__, __qualname__ = "torch", "FloatStorage"

    def rebuild(*args: object) -> None:
        raise AssertionError("never called while writing")

    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, rebuild  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Storage:
        def __init__(self, key: str, data: FloatArray) -> None:
            self.key, self.data = key, data

    class Tensor:
        def __init__(self, storage: Storage, shape: tuple[int, ...]) -> None:
            self.storage, self.shape = storage, shape

        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            strides = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
            return rebuild, (self.storage, 0, self.shape, strides, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.data.size, None)
            return None

    storages = [Storage(str(1000 + i), array.ravel()) for i, array in enumerate(state.values())]
    tensors = collections.OrderedDict(
        (name, Tensor(storage, array.shape))
        for (name, array), storage in zip(state.items(), storages, strict=True)
    )
    with path.open("wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, file, protocol=2)
        Pickler(file, protocol=2).dump(tensors)
        pickle.dump([s.key for s in storages], file, protocol=2)
        for storage in storages:
            file.write(struct.pack("<q", storage.data.size) + storage.data.astype("<f4").tobytes())


def test_reads_a_legacy_torch_state_dict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = random_state(ONET, seed=4)
    write_legacy_state(tmp_path / "onet.pt", state, monkeypatch)

    read = read_torch_state(tmp_path / "onet.pt")

    assert list(read) == list(state)
    for name, array in state.items():
        np.testing.assert_array_equal(read[name], array)


def test_verifier_runs_weights_read_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = random_state(ONET, seed=5)
    write_legacy_state(tmp_path / "onet.pt", state, monkeypatch)
    frame = np.random.default_rng(6).integers(0, 256, (120, 160, 3), np.uint8)
    boxes = Detections.from_boxes([[10, 20, 58, 68], [100, 40, 150, 110]], [0.3, 0.3], "face")
    verifier = MTCNNVerifier("cpu", min_face_probability=0.5, weights_path=tmp_path / "onet.pt")

    probability = verifier.face_probability(frame, boxes)

    crops = square_crops(frame, boxes.xyxy, 48).transpose(0, 3, 1, 2).astype(np.float32)
    expected = reference_forward(state, ONET, (crops - 127.5) / 128)[:, 1]
    np.testing.assert_allclose(probability, expected, atol=1e-5)
    np.testing.assert_array_equal(verifier.keep(frame, boxes), expected >= 0.5)
    assert verifier.keep(frame, Detections.empty()).shape == (0,)
    assert isinstance(verifier, Verifier)


@pytest.mark.weights
def test_info_names_the_model_and_package() -> None:
    info = MTCNNVerifier("cpu").info
    assert (info.name, info.model, info.license, info.precision) == ("face", "MTCNN O-Net", "MIT", "FP32")
    assert info.package.startswith("facenet-pytorch 2.")


def test_square_crops_are_centred_squares_padded_black() -> None:
    # GIVEN a frame whose pixel values encode their column, and a tall box at the left edge
    frame = np.repeat(np.tile(np.arange(100, dtype=np.uint8), (100, 1))[:, :, None], 3, axis=2)
    frame[:, :, 0] = 7  # blue: the crop comes back RGB, so this lands in the last channel

    [crop] = square_crops(frame, np.array([[0, 10, 20, 50]], np.float32), 40)

    # THEN the crop is 40 px wide around x = 10: columns -10..29, the 10 outside the frame black
    assert crop.shape == (40, 40, 3)
    assert np.all(crop[:, :10] == 0)
    np.testing.assert_array_equal(crop[0, 10:, 0], np.arange(30))
    assert np.all(crop[:, 10:, 2] == 7)


def test_square_crop_scale_widens_the_crop() -> None:
    frame = np.repeat(np.tile(np.arange(200, dtype=np.uint8), (200, 1))[:, :, None], 3, axis=2)
    [crop] = square_crops(frame, np.array([[80, 80, 120, 120]], np.float32), 80, scale=2.0)
    np.testing.assert_array_equal(crop[0, :, 0], np.arange(60, 140))


def _legacy_header() -> bytes:
    return b"".join(
        pickle.dumps(h, protocol=2) for h in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True})
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "MTCNN weights file .* is missing"),
        (b"PK\x03\x04 zip", "zip format"),
        (b"not a pickle", "cannot read MTCNN weights"),
        (pickle.dumps(collections.Counter(), protocol=2), "holds no collections.Counter"),
        (_legacy_header() + pickle.dumps({"conv1.weight": 1}, protocol=2) + pickle.dumps([]), "cannot read"),
    ],
    ids=["missing", "zip", "garbage", "foreign-class", "no-tensors"],
)
def test_bad_weights_file_raises_model_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "onet.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        MTCNNVerifier("cpu", weights_path=path)


def test_truncated_storage_raises_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_legacy_state(tmp_path / "onet.pt", random_state(ONET), monkeypatch)
    (tmp_path / "onet.pt").write_bytes((tmp_path / "onet.pt").read_bytes()[:-100])
    with pytest.raises(ModelError, match="ends inside a storage"):
        MTCNNVerifier("cpu", weights_path=tmp_path / "onet.pt")


def test_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("veil.engine.verifiers.onet.importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelError, match=r"'facenet-pytorch', which is not installed; run `make install`"):
        MTCNNVerifier("cpu")
