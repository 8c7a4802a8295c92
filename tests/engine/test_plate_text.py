"""Plate verification by reading: PP-OCR's recognizer keeps plates and drops other text, on drawn scenes."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from veil.engine.detections import Detections
from veil.engine.verifiers.base import Verifier
from veil.engine.verifiers.plate_text import PlateTextRule, PlateTextVerifier, Reading

Frame = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]

CAR_RED_BGR = (40, 40, 150)
PLATE_WHITE_BGR = (235, 235, 235)


@pytest.fixture(scope="module")
def verifier() -> PlateTextVerifier:
    return PlateTextVerifier("cpu", threads=1)


def write(
    frame: Frame, text: str, origin: tuple[int, int], scale: float, colour: tuple[int, int, int]
) -> None:
    thickness = max(2, round(scale * 2))
    cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def plate(frame: Frame, box: Box, *lines: str) -> None:
    """A white plate with a dark frame and one or two lines of dark characters."""
    x0, y0, x1, y1 = box
    cv2.rectangle(frame, (x0, y0), (x1, y1), PLATE_WHITE_BGR, -1)
    cv2.rectangle(frame, (x0, y0), (x1, y1), (30, 30, 30), 2)
    row_h = (y1 - y0) // len(lines)
    for row, text in enumerate(lines):
        write(frame, text, (x0 + 12, y0 + row * row_h + row_h * 3 // 4), row_h / 40, (20, 20, 20))


def scene() -> tuple[Frame, dict[str, Box]]:
    """A red car with a one-line and a two-line plate, a logo and a shirt print beside them."""
    frame = np.full((400, 600, 3), CAR_RED_BGR, np.uint8)
    boxes = {
        "plate": (195, 245, 405, 305),
        "two-line plate": (30, 200, 150, 300),
        "logo": (20, 20, 280, 90),
        "shirt print": (320, 60, 590, 130),
    }
    plate(frame, (200, 250, 400, 300), "B 123 XYZ")
    plate(frame, boxes["two-line plate"], "AB", "1234")
    cv2.rectangle(frame, (20, 20), (280, 90), (10, 10, 10), -1)
    write(frame, "SAMSUNG", (30, 72), 1.4, (240, 240, 240))
    cv2.rectangle(frame, (320, 20), (590, 200), (160, 90, 30), -1)
    write(frame, "BROOKLYN", (330, 110), 1.2, (255, 255, 255))
    write(frame, "ATHLETICS", (340, 160), 1.0, (255, 255, 255))
    return frame, boxes


@pytest.mark.weights
def test_keeps_plates_and_drops_other_text(verifier: PlateTextVerifier) -> None:
    frame, boxes = scene()
    candidates = Detections.from_boxes(
        np.array(list(boxes.values()), np.float32), np.ones(len(boxes)), "plate"
    )

    kept = verifier.keep(frame, candidates)

    assert dict(zip(boxes, kept.tolist(), strict=True)) == {
        "plate": True,
        "two-line plate": True,
        "logo": False,
        "shirt print": False,
    }


@pytest.mark.weights
def test_two_line_plate_is_read_as_halves(verifier: PlateTextVerifier) -> None:
    """GIVEN a two-line plate whose top line alone has no digit WHEN read whole fails THEN its halves pass."""
    frame = np.full((200, 200, 3), CAR_RED_BGR, np.uint8)
    plate(frame, (40, 40, 160, 140), "KL", "7")
    candidates = Detections.from_boxes(np.array([(40, 40, 160, 140)], np.float32), [1.0], "plate")
    no_halves = PlateTextVerifier("cpu", read_halves=False, threads=1)

    assert verifier.keep(frame, candidates).tolist() == [True]
    assert no_halves.keep(frame, candidates).tolist() == [False]


@pytest.mark.weights
def test_reads_the_middle_of_each_box(verifier: PlateTextVerifier) -> None:
    """GIVEN a plate box with a wide margin of other text WHEN read_fraction narrows it THEN it passes."""
    frame = np.full((200, 600, 3), CAR_RED_BGR, np.uint8)
    write(frame, "SALE SALE SALE SALE SALE SALE", (10, 60), 0.9, (255, 255, 255))
    plate(frame, (220, 80, 380, 120), "B 123 XYZ")
    write(frame, "OPEN EVERY DAY FROM NINE", (10, 160), 0.9, (255, 255, 255))
    candidates = Detections.from_boxes(np.array([(140, 20, 460, 180)], np.float32), [1.0], "plate")
    middle = PlateTextVerifier("cpu", read_fraction=(0.5, 0.25), threads=1)

    assert middle.keep(frame, candidates).tolist() == [True]


@pytest.mark.weights
@pytest.mark.parametrize(
    "box",
    [
        pytest.param((0, 0, 1, 1), id="one-pixel"),
        pytest.param((-50, -50, 30, 30), id="outside-the-frame"),
        pytest.param((590, 390, 700, 500), id="past-the-corner"),
    ],
)
def test_degenerate_boxes_are_read_without_error(box: Box) -> None:
    frame, _ = scene()
    candidates = Detections.from_boxes(np.array([box], np.float32), [1.0], "plate")
    reader_only = PlateTextVerifier("cpu", keep_unread_blocks=False, threads=1)

    assert reader_only.keep(frame, candidates).tolist() == [False]


def scribbles(frame: Frame, box: Box, seed: int) -> None:
    """A light block with two rows of curved dark strokes: a plate in a script the recognizer lacks."""
    x0, y0, x1, y1 = box
    cv2.rectangle(frame, (x0, y0), (x1, y1), PLATE_WHITE_BGR, -1)
    rng = np.random.default_rng(seed)
    row_h = (y1 - y0) // 2
    for row in range(2):
        for k in range(4):
            cx = x0 + (k + 0.5) * (x1 - x0) / 4
            cy = y0 + row * row_h + row_h / 2
            axes = (int(row_h * rng.uniform(0.15, 0.3)), int(row_h * rng.uniform(0.2, 0.35)))
            start = int(rng.integers(0, 180))
            centre = (int(cx), int(cy))
            cv2.ellipse(frame, centre, axes, 0, start, start + 220, (20, 20, 20), max(2, row_h // 10))


@pytest.mark.weights
def test_unreadable_two_line_block_is_kept_unless_large_or_readable(verifier: PlateTextVerifier) -> None:
    """GIVEN blocks of strokes the recognizer cannot read, small and large, and a block of plain words
    WHEN verified THEN only the small unreadable one is kept (the reader alone keeps none)."""
    frame = np.full((720, 1280, 3), CAR_RED_BGR, np.uint8)
    boxes = {"small unreadable": (100, 100, 200, 180), "large unreadable": (400, 100, 800, 420)}
    scribbles(frame, boxes["small unreadable"], seed=1)
    scribbles(frame, boxes["large unreadable"], seed=2)
    boxes["words"] = (900, 100, 1100, 260)
    cv2.rectangle(frame, (900, 100), (1100, 260), PLATE_WHITE_BGR, -1)
    write(frame, "OPEN", (920, 165), 1.5, (20, 20, 20))
    write(frame, "CAFE", (920, 240), 1.5, (20, 20, 20))
    candidates = Detections.from_boxes(np.array(list(boxes.values()), np.float32), np.ones(3), "plate")
    reader_only = PlateTextVerifier("cpu", keep_unread_blocks=False, threads=1)

    assert dict(zip(boxes, verifier.keep(frame, candidates).tolist(), strict=True)) == {
        "small unreadable": True,
        "large unreadable": False,
        "words": False,
    }
    assert not reader_only.keep(frame, candidates).any()


@pytest.mark.weights
def test_no_candidates(verifier: PlateTextVerifier) -> None:
    frame, _ = scene()

    assert verifier.keep(frame, Detections.empty()).shape == (0,)


@pytest.mark.weights
def test_is_a_verifier_and_reports_itself(verifier: PlateTextVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.info.license == "Apache-2.0"
    assert verifier.info.precision == "FP32"
    assert verifier.info.package.startswith("rapidocr ")


def reading(text: str, confidence: float = 0.9) -> Reading:
    return Reading(text, (confidence,) * len(text))


@pytest.mark.parametrize(
    ("read", "accepted"),
    [
        pytest.param(reading("B123XYZ"), True, id="eu-plate"),
        pytest.param(reading("KA05MH2231"), True, id="indian-plate-10-chars"),
        pytest.param(reading("京A12345"), True, id="chinese-plate-one-province-sign"),
        pytest.param(reading("7AB"), True, id="three-chars"),
        pytest.param(reading("SAMSUNG"), False, id="word-without-digits"),
        pytest.param(reading("12"), False, id="too-short"),
        pytest.param(reading("CALL0800123456"), False, id="phone-number-too-long"),
        pytest.param(reading("中华人民共和国1"), False, id="other-script"),
        pytest.param(reading("B123XYZ", 0.2), False, id="unsure"),
        pytest.param(reading("Feb. 24"), False, id="a-date-in-lower-case"),
        pytest.param(reading("5:30 pm"), False, id="a-time"),
        pytest.param(reading(""), False, id="nothing-read"),
        pytest.param(reading("UHI-FOF"), True, id="letter-groups"),
        pytest.param(reading("UHI-FOF", 0.5), False, id="letter-groups-unsure"),
        pytest.param(reading("OPEN DAILY"), False, id="words-are-no-letter-groups"),
    ],
)
def test_rule_accepts_registrations(read: Reading, accepted: bool) -> None:
    assert PlateTextRule().accepts(read) is accepted
