"""The default face detector: CenterFace with its weak boxes checked by the MTCNN stage each purpose uses."""

from __future__ import annotations

import pytest

from veil.engine.detectors.base import Detector, DetectorConfig, Purpose, load_detector
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.detectors.faces import PHOTO_CHECK, VIDEO_CHECK, FaceCheck, face_detector
from veil.engine.detectors.verified import VerifiedDetector


@pytest.mark.weights
@pytest.mark.parametrize(
    ("purpose", "check", "verifier"),
    [("photo", PHOTO_CHECK, "MTCNN O-Net"), ("video", VIDEO_CHECK, "MTCNN R-Net")],
)
def test_each_purpose_gets_its_check(purpose: Purpose, check: FaceCheck, verifier: str) -> None:
    detector = face_detector(DetectorConfig(device="cpu", purpose=purpose))

    assert isinstance(detector, VerifiedDetector) and isinstance(detector, Detector)
    assert isinstance(detector.detector, CenterFaceDetector)
    assert detector.detector.threshold == check.threshold
    assert detector.check_below == check.check_below
    assert detector.info.model == "CenterFace"
    assert detector.info.verifier is not None and detector.info.verifier.model == verifier


@pytest.mark.weights
def test_a_given_threshold_replaces_the_tuned_one() -> None:
    detector = face_detector(DetectorConfig(device="cpu", threshold=0.6))

    assert isinstance(detector, VerifiedDetector) and isinstance(detector.detector, CenterFaceDetector)
    assert detector.detector.threshold == 0.6


@pytest.mark.weights
def test_the_face_entry_point_is_the_verified_detector() -> None:
    assert isinstance(load_detector("face", DetectorConfig(device="cpu")), VerifiedDetector)
