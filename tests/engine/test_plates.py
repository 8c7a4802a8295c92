"""The default plate detector end to end: the real PP-OCR models on drawn plates, and its failure modes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from veil.engine.boxes import box_iou
from veil.engine.detectors.base import Detector, DetectorConfig
from veil.engine.detectors.plates import PlateCandidates, plate_detector
from veil.engine.errors import ModelError

Frame = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return plate_detector(DetectorConfig(device="cpu"), threads=1)


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
def test_finds_drawn_plate(detector: Detector, plate_xyxy: Box) -> None:
    """GIVEN a drawn plate on a textured 1280x720 frame WHEN detected THEN one box overlaps it."""
    found = detector.detect(draw_plate(textured_frame(), plate_xyxy))

    assert set(found.label.tolist()) == {"plate"}
    assert box_iou(found.xyxy, plate_xyxy).max() >= 0.3


@pytest.mark.weights
def test_box_covers_the_characters_with_a_margin(detector: Detector) -> None:
    """The text line is grown by its own proportions, so the box holds every character with room around."""
    plate_xyxy = (700, 400, 880, 490)
    found = detector.detect(draw_plate(textured_frame(), plate_xyxy))

    font_scale = (plate_xyxy[2] - plate_xyxy[0]) / 165
    (text_w, text_h), _ = cv2.getTextSize(
        "ABC 1234", cv2.FONT_HERSHEY_SIMPLEX, font_scale, round(font_scale * 3)
    )
    centre_x, centre_y = (plate_xyxy[0] + plate_xyxy[2]) / 2, (plate_xyxy[1] + plate_xyxy[3]) / 2
    x0, y0, x1, y1 = found.xyxy[int(np.argmax(box_iou(found.xyxy, plate_xyxy)))]
    assert x0 <= centre_x - text_w / 2 - 2 and x1 >= centre_x + text_w / 2 + 2
    assert y0 <= centre_y - text_h / 2 - 2 and y1 >= centre_y + text_h / 2 + 2


@pytest.mark.weights
@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_frame_has_no_plates(detector: Detector, value: int) -> None:
    assert len(detector.detect(np.full((720, 1280, 3), value, np.uint8))) == 0


@pytest.mark.weights
def test_plate_cut_by_the_frame_edge_stays_inside(detector: Detector) -> None:
    frame = draw_plate(textured_frame(), (1180, 600, 1380, 700), text="1234 ABC")[:, :1280]

    found = detector.detect(np.ascontiguousarray(frame))

    assert len(found) >= 1
    assert_inside(found.xyxy, 1280, 720)


@pytest.mark.weights
@pytest.mark.parametrize(
    ("width", "height"),
    [(1, 1), (7, 3), (33, 65), (641, 359), (3001, 17), (1079, 1921)],
)
def test_odd_frame_sizes(detector: Detector, width: int, height: int) -> None:
    frame = textured_frame(width, height, seed=width)
    if width >= 200 and height >= 200:
        frame = draw_plate(frame, (width // 4, height // 4, width // 4 + 120, height // 4 + 60))

    found = detector.detect(frame)

    assert_inside(found.xyxy, width, height)
    assert len(found.confidence) == len(found) and (found.confidence <= 1).all()


@pytest.mark.weights
def test_non_contiguous_frame(detector: Detector) -> None:
    """A flipped view (negative strides), as slicing BGR from RGB produces, is accepted."""
    plate_xyxy = (700, 400, 880, 490)
    frame = draw_plate(textured_frame(), plate_xyxy)[:, :, ::-1][:, :, ::-1]

    found = detector.detect(frame[:, ::-1][:, ::-1])

    assert box_iou(found.xyxy, plate_xyxy).max() >= 0.3


@pytest.mark.weights
def test_is_a_detector_and_reports_itself(detector: Detector) -> None:
    assert isinstance(detector, Detector)
    assert detector.info.name == "plate"
    assert detector.info.labels == ("plate",)
    assert detector.info.license == "Apache-2.0"
    assert detector.info.package.startswith("rapidocr ")
    assert detector.info.provider == "CPUExecutionProvider"


@pytest.mark.weights
def test_config_threshold_replaces_box_threshold() -> None:
    strict = PlateCandidates(DetectorConfig(device="cpu", threshold=0.99), threads=1)
    frame = draw_plate(textured_frame(), (700, 400, 880, 490))

    assert strict.lines.box_threshold == 0.99
    assert (strict.detect(frame).confidence >= 0.99).all()


@pytest.mark.weights
def test_reading_drops_text_that_is_no_plate(detector: Detector) -> None:
    """GIVEN a plate and a shop sign WHEN detected THEN only the plate is kept; unread, both are there."""
    plate_xyxy = (700, 400, 880, 490)
    frame = draw_plate(textured_frame(), plate_xyxy)
    cv2.putText(frame, "OPEN DAILY", (100, 150), cv2.FONT_HERSHEY_SIMPLEX, 2, (250, 250, 250), 4)
    unread = PlateCandidates(DetectorConfig(device="cpu"), threads=1)

    found = detector.detect(frame)
    candidates = unread.detect(frame)

    assert len(found) == 1 and box_iou(found.xyxy, plate_xyxy).max() >= 0.3
    assert len(candidates) == 2
    assert detector.info.verifier is not None and detector.info.verifier.model == "PP-OCRv6 text recognition"


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
        plate_detector(DetectorConfig(device="cpu", model_path=model_path))


@pytest.mark.weights
@pytest.mark.parametrize("shape", [(720, 1280), (720, 1280, 4), (0, 0, 3)])
def test_wrong_frame_shape_raises_model_error(detector: Detector, shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError, match="needs an"):
        detector.detect(np.zeros(shape, np.uint8))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
