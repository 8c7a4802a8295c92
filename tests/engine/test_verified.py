"""VerifiedDetector: strong boxes pass unasked, weak ones only where the verifier confirms them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector
from veil.engine.detectors.fake import FakeDetector
from veil.engine.detectors.verified import VerifiedDetector
from veil.engine.verifiers.base import VerifierInfo

FRAME = np.zeros((100, 200, 3), np.uint8)
BOXES = Detections.from_boxes(
    [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]], [0.9, 0.3, 0.5, 0.2], "face"
)


class ScriptedVerifier:
    """Confirms the candidates whose left edge is in `confirmed_x1`; records what it was asked."""

    def __init__(self, confirmed_x1: set[float], license: str = "MIT") -> None:
        self.confirmed_x1 = confirmed_x1
        self.asked: list[Detections] = []
        self.info = VerifierInfo("face", "scripted", "tests 1", license, "FP32")

    def keep(self, frame_bgr: npt.NDArray[np.uint8], candidates: Detections) -> npt.NDArray[np.bool_]:
        self.asked.append(candidates)
        return np.isin(candidates.xyxy[:, 0], list(self.confirmed_x1))


@pytest.mark.parametrize(
    ("check_below", "confirmed_x1", "asked_x1", "kept_x1"),
    [
        (0.5, set(), [20, 60], [0, 40]),  # only boxes under 0.5 are asked; both rejected
        (0.5, {60.0}, [20, 60], [0, 40, 60]),  # a confirmed weak box stays, in the detector's order
        (0.95, {0.0, 40.0}, [0, 20, 40, 60], [0, 40]),  # every box is weak
        (0.1, set(), [], [0, 20, 40, 60]),  # every box is strong: the verifier is not called
    ],
)
def test_weak_boxes_are_kept_only_where_confirmed(
    check_below: float, confirmed_x1: set[float], asked_x1: list[float], kept_x1: list[float]
) -> None:
    verifier = ScriptedVerifier(confirmed_x1)
    detector = VerifiedDetector(FakeDetector(BOXES), verifier, check_below)

    found = detector.detect(FRAME)

    assert found.xyxy[:, 0].tolist() == kept_x1
    assert [x for asked in verifier.asked for x in asked.xyxy[:, 0].tolist()] == asked_x1
    assert len(verifier.asked) == (1 if asked_x1 else 0), "all weak boxes of a frame go in one call"
    np.testing.assert_array_equal(found.confidence, BOXES.confidence[np.isin(BOXES.xyxy[:, 0], kept_x1)])


def test_no_boxes_asks_nothing() -> None:
    verifier = ScriptedVerifier(set())
    found = VerifiedDetector(FakeDetector(Detections.empty()), verifier, 0.5).detect(FRAME)
    assert len(found) == 0 and verifier.asked == []


def test_info_names_both_models() -> None:
    verifier = ScriptedVerifier(set(), "Apache-2.0")
    detector = VerifiedDetector(FakeDetector(BOXES), verifier, 0.5)

    assert isinstance(detector, Detector)
    assert detector.info == replace(FakeDetector(BOXES).info, verifier=verifier.info)
    assert (detector.info.name, detector.info.labels) == ("fake", ("face", "plate"))
