"""MTCNN's O-Net as a face verifier, run from the weights that ship inside `facenet-pytorch` (MIT).

MTCNN's last stage, O-Net, takes a 48x48 RGB crop and gives the probability that it holds a face. It was
trained apart from CenterFace, on square crops of faces and non-faces, so its mistakes are not CenterFace's:
it confirms or rejects CenterFace's weak boxes. `facenet-pytorch` is installed without its dependencies
(they pull in torch); its weights are torch state dicts in torch's legacy format, read here with a restricted
unpickler into numpy arrays, and the network is rebuilt as an ONNX graph in memory with `onnx.helper`.
"""

from __future__ import annotations

import collections
import importlib.util
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from veil.engine.detections import Detections
from veil.engine.detectors.base import Device
from veil.engine.detectors.onnx import create_session, package_version
from veil.engine.errors import ModelError
from veil.engine.verifiers.base import VerifierInfo

__all__ = [
    "DEFAULT_MIN_FACE_PROBABILITY",
    "ONET",
    "RNET",
    "MTCNNNet",
    "MTCNNVerifier",
    "NetSpec",
    "mtcnn_onnx",
    "packaged_weights",
    "read_torch_state",
    "square_crops",
]

FloatArray = npt.NDArray[np.float32]

# MTCNN's own cut for O-Net (facenet-pytorch's thresholds [0.6, 0.7, 0.7]). On wider_dev the best cut depends
# on which CenterFace boxes are checked: BENCHMARKS.md, "Issue 9: faces, O-Net verifier".
DEFAULT_MIN_FACE_PROBABILITY = 0.7
PACKAGE = "facenet_pytorch"
DISTRIBUTION = "facenet-pytorch"
# MTCNN's input normalisation: (x - 127.5) / 128.
PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125


@dataclass(frozen=True)
class NetSpec:
    """One MTCNN stage as facenet-pytorch defines it (its layer names index the state dict).

    Attributes:
        weights: file name in facenet_pytorch/data.
        input_side: side of the square RGB input, pixels.
        convs: (conv, prelu, (pool kernel, pool stride) or None) per convolution block, in order.
        dense: (linear, prelu) hidden layer after the flatten.
        head: the linear layer whose softmax is (not face, face).
        name: what `veil doctor` calls it.
    """

    weights: str
    input_side: int
    convs: tuple[tuple[str, str, tuple[int, int] | None], ...]
    dense: tuple[str, str]
    head: str
    name: str


ONET = NetSpec(
    "onet.pt",
    48,
    (
        ("conv1", "prelu1", (3, 2)),
        ("conv2", "prelu2", (3, 2)),
        ("conv3", "prelu3", (2, 2)),
        ("conv4", "prelu4", None),
    ),
    ("dense5", "prelu5"),
    "dense6_1",
    "MTCNN O-Net",
)
RNET = NetSpec(
    "rnet.pt",
    24,
    (("conv1", "prelu1", (3, 2)), ("conv2", "prelu2", (3, 2)), ("conv3", "prelu3", None)),
    ("dense4", "prelu4"),
    "dense5_1",
    "MTCNN R-Net",
)


class MTCNNVerifier:
    """Keeps the face candidates an MTCNN stage (O-Net or R-Net) gives at least `min_face_probability`.

    Args:
        device: "auto", "cpu" or "cuda".
        min_face_probability: O-Net face probability a candidate needs to be kept.
        crop_scale: side of the square crop as a multiple of the box's longer side.
        weights_path: a facenet-pytorch O-Net state dict; None uses the installed package's.
        threads: intra-op threads; 0 lets ONNX Runtime choose.
        net: ONET (48x48 input) or RNET (24x24, five times cheaper).

    Raises:
        ModelError: facenet-pytorch or its weights file is missing, or the file cannot be read.
    """

    def __init__(
        self,
        device: Device = "auto",
        min_face_probability: float = DEFAULT_MIN_FACE_PROBABILITY,
        *,
        crop_scale: float = 1.0,
        weights_path: Path | None = None,
        threads: int = 0,
        net: NetSpec = ONET,
    ) -> None:
        self.min_face_probability = min_face_probability
        self.crop_scale = crop_scale
        self.net = net
        self._net = MTCNNNet(net, device, weights_path, threads)
        self.info = VerifierInfo(
            name="face",
            model=net.name,
            package=f"{DISTRIBUTION} {package_version(DISTRIBUTION)}",
            license="MIT",
            precision="FP32",
        )

    def keep(self, frame_bgr: npt.NDArray[np.uint8], candidates: Detections) -> npt.NDArray[np.bool_]:
        """(N,) True for each of the N candidates (xyxy, frame pixels) the network takes for a face."""
        return self.face_probability(frame_bgr, candidates) >= self.min_face_probability

    def face_probability(self, frame_bgr: npt.NDArray[np.uint8], candidates: Detections) -> FloatArray:
        """(N,) face probability of each candidate's square crop of `frame_bgr` (H, W, 3 BGR)."""
        return self._net.face_probability(
            square_crops(frame_bgr, candidates.xyxy, self.net.input_side, self.crop_scale)
        )


class MTCNNNet:
    """One MTCNN stage opened with ONNX Runtime; see `MTCNNVerifier` for the arguments."""

    def __init__(self, spec: NetSpec, device: Device, weights_path: Path | None, threads: int) -> None:
        path = weights_path or packaged_weights(spec.weights)
        try:
            model = mtcnn_onnx(read_torch_state(path), spec)
        except FileNotFoundError as exc:
            raise ModelError(f"MTCNN weights file {path} is missing") from exc
        except Exception as exc:  # a damaged or foreign file fails in pickle, struct, numpy or onnx
            raise ModelError(f"cannot read MTCNN weights {path}: {exc}") from exc
        self.spec = spec
        self._session = create_session(model, device, threads)

    def face_probability(self, crops_rgb: npt.NDArray[np.uint8]) -> FloatArray:
        """(N,) face probability of (N, side, side, 3) uint8 RGB crops."""
        if not len(crops_rgb):
            return np.empty(0, np.float32)
        blob = (crops_rgb.transpose(0, 3, 1, 2).astype(np.float32) - PIXEL_MEAN) * PIXEL_SCALE
        (probabilities,) = self._session.run(None, {"input": blob})
        return np.asarray(probabilities[:, 1], np.float32)


def packaged_weights(resource: str) -> Path:
    """Path of an MTCNN weights file inside the installed facenet-pytorch, found without importing it.

    Importing facenet_pytorch would import torch, which Veil does not install.

    Raises:
        ModelError: the package or the file is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the face verifier needs MTCNN weights from the package {DISTRIBUTION!r}, which is not "
            "installed; run `make install` (it installs the package without torch)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / resource
    if not path.is_file():
        raise ModelError(f"MTCNN weights file data/{resource} is missing from the package {DISTRIBUTION!r}")
    return path


def square_crops(
    frame_bgr: npt.NDArray[np.uint8], xyxy: FloatArray, side: int, scale: float = 1.0
) -> npt.NDArray[np.uint8]:
    """Square RGB crops around boxes, as MTCNN crops its candidates, resized to side x side.

    Each crop is centred on its box and `scale` times the box's longer side; what falls outside the frame is
    black, as in MTCNN, so a face at the border keeps its place in the crop.

    Args:
        frame_bgr: (H, W, 3) uint8 BGR frame.
        xyxy: (N, 4) boxes, frame pixels.
        side: output side, pixels.
        scale: crop side / box's longer side.

    Returns:
        (N, side, side, 3) uint8 RGB crops.
    """
    crops = np.zeros((len(xyxy), side, side, 3), np.uint8)
    height, width = frame_bgr.shape[:2]
    for index, (x1, y1, x2, y2) in enumerate(np.asarray(xyxy, np.float64)):
        length = max(1, round(max(x2 - x1, y2 - y1) * scale))
        left, top = round((x1 + x2 - length) / 2), round((y1 + y2 - length) / 2)
        inside = frame_bgr[max(top, 0) : min(top + length, height), max(left, 0) : min(left + length, width)]
        if not inside.size:
            continue
        square = cv2.copyMakeBorder(
            inside,
            max(-top, 0),
            max(top + length - height, 0),
            max(-left, 0),
            max(left + length - width, 0),
            cv2.BORDER_CONSTANT,
            value=(0, 0, 0),
        )
        interpolation = cv2.INTER_AREA if length > side else cv2.INTER_LINEAR
        crops[index] = cv2.cvtColor(
            cv2.resize(square, (side, side), interpolation=interpolation), cv2.COLOR_BGR2RGB
        )
    return crops


def mtcnn_onnx(state: Mapping[str, FloatArray], spec: NetSpec) -> bytes:
    """The serialized ONNX model of one MTCNN stage, built from its facenet-pytorch state dict.

    Input "input": (N, 3, side, side) float32 RGB, normalised as (x - 127.5) / 128. Output "probabilities":
    (N, 2) softmax of (not face, face). The box and landmark regressions are left out.

    Raises:
        KeyError: a layer's weights are missing from `state`.
        onnx.checker.ValidationError: the weights' shapes do not fit the graph.
    """
    graph = _Graph(state)
    x = "input"
    for conv, prelu, pool in spec.convs:
        x = graph.node("Conv", [x, graph.weight(f"{conv}.weight"), graph.weight(f"{conv}.bias")], conv)
        x = graph.node("PRelu", [x, graph.weight(f"{prelu}.weight", (-1, 1, 1))], prelu)
        if pool is not None:
            kernel, stride = pool
            # torch's ceil_mode: a last window hanging over the edge still yields an output.
            x = graph.node(
                "MaxPool", [x], f"{prelu}_pool", kernel_shape=[kernel] * 2, strides=[stride] * 2, ceil_mode=1
            )
    # facenet-pytorch flattens (N, C, H, W) as (N, W, H, C), the order of the Caffe weights it converted.
    x = graph.node("Transpose", [x], "permuted", perm=[0, 3, 2, 1])
    x = graph.node("Flatten", [x], "flat", axis=1)
    linear, prelu = spec.dense
    x = graph.node(
        "Gemm", [x, graph.weight(f"{linear}.weight"), graph.weight(f"{linear}.bias")], linear, transB=1
    )
    x = graph.node("PRelu", [x, graph.weight(f"{prelu}.weight")], prelu)
    x = graph.node(
        "Gemm",
        [x, graph.weight(f"{spec.head}.weight"), graph.weight(f"{spec.head}.bias")],
        spec.head,
        transB=1,
    )
    graph.node("Softmax", [x], "probabilities", axis=1)
    side = spec.input_side
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            f"mtcnn_{spec.weights.removesuffix('.pt')}",
            [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 3, side, side])],
            [helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, ["batch", 2])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", 13)],
        ir_version=8,  # old enough for every ONNX Runtime Veil supports
    )
    onnx.checker.check_model(model, full_check=True)
    return bytes(model.SerializeToString())


class _Graph:
    """Nodes and initializers of an ONNX graph being built; each node's output is named after it."""

    def __init__(self, state: Mapping[str, FloatArray]) -> None:
        self.state = state
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def weight(self, key: str, shape: tuple[int, ...] | None = None) -> str:
        array = np.asarray(self.state[key], np.float32)
        self.initializers.append(numpy_helper.from_array(array.reshape(shape or array.shape), key))
        return key

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        return name


# torch.save's legacy format: five pickles and raw storages, see `read_torch_state`.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES: dict[str, type[np.floating[Any]]] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
}


def read_torch_state(path: Path) -> dict[str, FloatArray]:
    """The tensors of a state dict written by torch.save in its legacy (pre-1.6, non-zip) format.

    The file is: pickles of a magic number, the protocol version and system info; a pickle of the dict,
    whose tensors point at storages by key; a pickle of the storage keys; then each storage as an int64
    element count and raw little-endian data. Only the classes a state dict uses may be unpickled.

    Returns:
        Parameter name -> float32 array, e.g. "conv1.weight" -> (32, 3, 3, 3).

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file is not a legacy torch state dict of float tensors.
    """
    with path.open("rb") as file:
        if file.read(2) == b"PK":
            raise ValueError("the file is in torch's zip format; this reader knows only the legacy format")
        file.seek(0)
        header = [_StateUnpickler(file).load() for _ in range(3)]
        if header[:2] != [_LEGACY_MAGIC, _LEGACY_PROTOCOL] or not header[2].get("little_endian"):
            raise ValueError("not a little-endian legacy torch file")
        unpickler = _StateUnpickler(file)
        state = unpickler.load()
        for key in _StateUnpickler(file).load():
            unpickler.storages[key].read(file)
    return {name: tensor.array() for name, tensor in state.items()}


class _Storage:
    def __init__(self, dtype: type[np.floating[Any]], numel: int) -> None:
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.numel = numel
        self.data: npt.NDArray[Any] | None = None

    def read(self, file: IO[bytes]) -> None:
        (numel,) = struct.unpack("<q", file.read(8))
        if numel != self.numel:
            raise ValueError(f"storage holds {numel} elements, its tensors expect {self.numel}")
        raw = file.read(numel * self.dtype.itemsize)
        if len(raw) != numel * self.dtype.itemsize:
            raise ValueError("the file ends inside a storage")
        self.data = np.frombuffer(raw, self.dtype)


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> FloatArray:
        data = self.storage.data
        if data is None:
            raise ValueError("a tensor's storage is missing from the file")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True) if n)
        if self.offset < 0 or last >= len(data):
            raise ValueError("a tensor reaches past its storage")
        strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, strides, writeable=False)
        return np.array(view, np.float32)


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _TensorRef:
    # torch._utils._rebuild_tensor_v2's arguments; requires_grad and hooks mean nothing here.
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


class _StateUnpickler(pickle.Unpickler):
    """Unpickles only what a legacy torch state dict holds: no other class can be loaded."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"a torch state dict holds no {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _location, numel, *_ = pid
        if kind != "storage" or storage_type not in _STORAGE_DTYPES:
            raise pickle.UnpicklingError(f"unexpected persistent object {kind!r} {storage_type!r}")
        storage = self.storages.setdefault(key, _Storage(_STORAGE_DTYPES[storage_type], numel))
        return storage
