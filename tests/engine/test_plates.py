"""The default plate detector: the real PP-OCR text model on drawn plates, and its failure modes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from veil.engine.boxes import box_iou
from veil.engine.detectors.base import Detector, DetectorConfig
from veil.engine.detectors.plates import PlateDetector, PlateFilter, text_lines
from veil.engine.errors import ModelError

Frame = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]


@pytest.fixture(scope="module")
def detector() -> PlateDetector:
    return PlateDetector(DetectorConfig(device="cpu"), threads=1)


def textured_frame(width: int = 1280, height: int = 720, seed: int = 0) -> Frame:
    """A grey frame with blurred noise, so the detector sees texture rather than a flat field."""
    rng = np.random.default_rng(seed)
    noise = np.clip(rng.normal(110, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    return np.asarray(cv2.GaussianBlur(noise, (5, 5), 0), np.uint8)


def draw_plate(frame: Frame, plate_xyxy: Box, text: str = "ABC 1234") -> Frame:
    """Draws a white 2:1 plate with a dark border and dark characters filling most of its width."""
    x0, y0, x1, y1 = plate_xyxy
    out = frame.copy()
    cv2.rectangle(out, (x0, y0), (x1, y1), (240, 240, 240), -1)
    cv2.rectangle(out, (x0, y0), (x1, y1), (40, 40, 40), 2)
    font_scale = (x1 - x0) / 165
    thickness = max(1, round(font_scale * 3))
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    origin = (x0 + (x1 - x0 - text_w) // 2, y0 + (y1 - y0 + text_h) // 2)
    cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (20, 20, 20), thickness, cv2.LINE_AA)
    return out


def assert_inside(boxes: npt.NDArray[np.float32], width: int, height: int) -> None:
    assert boxes.dtype == np.float32
    assert (boxes[:, [0, 1]] >= 0).all()
    assert (boxes[:, 2] <= width).all()
    assert (boxes[:, 3] <= height).all()
    assert (boxes[:, 2] > boxes[:, 0]).all()
    assert (boxes[:, 3] > boxes[:, 1]).all()


@pytest.mark.weights
@pytest.mark.parametrize(
    "plate_xyxy",
    [
        pytest.param((700, 400, 880, 490), id="near-car-180px"),
        pytest.param((200, 300, 300, 350), id="far-car-100px"),
        pytest.param((560, 80, 800, 200), id="close-up-240px"),
    ],
)
def test_finds_drawn_plate(detector: PlateDetector, plate_xyxy: Box) -> None:
    """GIVEN a drawn plate on a textured 1280x720 frame WHEN detected THEN one box overlaps it."""
    found = detector.detect(draw_plate(textured_frame(), plate_xyxy))

    assert set(found.label.tolist()) == {"plate"}
    assert box_iou(found.xyxy, plate_xyxy).max() >= 0.3


@pytest.mark.weights
def test_box_covers_the_whole_plate(detector: PlateDetector) -> None:
    """The characters fill only part of a plate; the box is grown to cover the plate around them."""
    plate_xyxy = (700, 400, 880, 490)
    found = detector.detect(draw_plate(textured_frame(), plate_xyxy))

    x0, y0, x1, y1 = found.xyxy[int(np.argmax(box_iou(found.xyxy, plate_xyxy)))]
    assert x0 <= plate_xyxy[0] + 5 and y0 <= plate_xyxy[1] + 5
    assert x1 >= plate_xyxy[2] - 5 and y1 >= plate_xyxy[3] - 5


@pytest.mark.weights
@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_frame_has_no_plates(detector: PlateDetector, value: int) -> None:
    assert len(detector.detect(np.full((720, 1280, 3), value, np.uint8))) == 0


@pytest.mark.weights
def test_plate_cut_by_the_frame_edge_stays_inside(detector: PlateDetector) -> None:
    frame = draw_plate(textured_frame(), (1180, 600, 1380, 700))[:, :1280]

    found = detector.detect(np.ascontiguousarray(frame))

    assert len(found) >= 1
    assert_inside(found.xyxy, 1280, 720)


@pytest.mark.weights
@pytest.mark.parametrize(
    ("width", "height"),
    [(1, 1), (7, 3), (33, 65), (641, 359), (3001, 17), (1079, 1921)],
)
def test_odd_frame_sizes(detector: PlateDetector, width: int, height: int) -> None:
    frame = textured_frame(width, height, seed=width)
    if width >= 200 and height >= 200:
        frame = draw_plate(frame, (width // 4, height // 4, width // 4 + 120, height // 4 + 60))

    found = detector.detect(frame)

    assert_inside(found.xyxy, width, height)
    assert len(found.confidence) == len(found) and (found.confidence <= 1).all()


@pytest.mark.weights
def test_non_contiguous_frame(detector: PlateDetector) -> None:
    """A flipped view (negative strides), as slicing BGR from RGB produces, is accepted."""
    plate_xyxy = (700, 400, 880, 490)
    frame = draw_plate(textured_frame(), plate_xyxy)[:, :, ::-1][:, :, ::-1]

    found = detector.detect(frame[:, ::-1][:, ::-1])

    assert box_iou(found.xyxy, plate_xyxy).max() >= 0.3


@pytest.mark.weights
def test_is_a_detector_and_reports_itself(detector: PlateDetector) -> None:
    assert isinstance(detector, Detector)
    assert detector.info.name == "plate"
    assert detector.info.labels == ("plate",)
    assert detector.info.license == "Apache-2.0"
    assert detector.info.package.startswith("rapidocr ")
    assert detector.info.provider == "CPUExecutionProvider"


@pytest.mark.weights
def test_config_threshold_replaces_box_threshold() -> None:
    strict = PlateDetector(DetectorConfig(device="cpu", threshold=0.99), threads=1)
    frame = draw_plate(textured_frame(), (700, 400, 880, 490))

    assert strict.box_threshold == 0.99
    assert (strict.detect(frame).confidence >= 0.99).all()


@pytest.mark.parametrize(
    ("make_model", "message"),
    [
        pytest.param(lambda tmp: tmp / "missing.onnx", "does not exist", id="missing-file"),
        pytest.param(lambda tmp: tmp, "does not exist", id="a-directory"),
        pytest.param(lambda tmp: _write(tmp / "junk.onnx", b"not a model"), "cannot load", id="not-onnx"),
    ],
)
def test_unusable_model_path_raises_model_error(
    tmp_path: Path, make_model: Callable[[Path], Path], message: str
) -> None:
    model_path = make_model(tmp_path)

    with pytest.raises(ModelError, match=message):
        PlateDetector(DetectorConfig(device="cpu", model_path=model_path))


@pytest.mark.weights
@pytest.mark.parametrize("shape", [(720, 1280), (720, 1280, 4), (0, 0, 3)])
def test_wrong_frame_shape_raises_model_error(detector: PlateDetector, shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError, match="needs an"):
        detector.detect(np.zeros(shape, np.uint8))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_text_lines_unclips_like_pp_ocr() -> None:
    """GIVEN a map with one 40x10 block of text WHEN lines are read THEN the block grows by
    area * 1.5 / perimeter on every side, and its score is the mean probability inside it (the
    dilated rim of zeros included, as in PP-OCR)."""
    prob_map = np.zeros((64, 128), np.float32)
    prob_map[20:30, 30:70] = 0.9

    rects, scores = text_lines(prob_map, pixel_threshold=0.3, unclip_ratio=1.5, min_score=0.5)

    assert len(rects) == 1
    # Dilation makes the block 41x11 pixels; its contour runs through pixel centres, so 40x10.
    grow = 2 * (40 * 10 * 1.5 / (2 * (40 + 10)))
    long_side, short_side = max(rects[0, 2:4]), min(rects[0, 2:4])
    assert long_side == pytest.approx(40 + grow, abs=0.5)
    assert short_side == pytest.approx(10 + grow, abs=0.5)
    assert 0.7 <= scores[0] <= 0.9


@pytest.mark.parametrize(
    ("block", "kept"),
    [
        pytest.param((slice(20, 30), slice(30, 70)), 1, id="plate-like-4:1"),
        pytest.param((slice(30, 32), slice(4, 124)), 0, id="thin-rule-not-text"),
    ],
)
def test_plates_from_map_filters_lines(block: tuple[slice, slice], kept: int) -> None:
    rules = PlateFilter(min_aspect=1.0, max_aspect=8.0, min_height_frac=0.0, max_height_frac=1.0)
    detector = PlateDetector(DetectorConfig(device="cpu"), plate_filter=rules, threads=1)
    prob_map = np.zeros((64, 128), np.float32)
    prob_map[block] = 0.9

    found = detector.plates_from_map(prob_map, scale=1.0, width=128, height=64)

    assert len(found) == kept
    assert_inside(found.xyxy, 128, 64)
