"""Detectors are built once tuned for photos and once for video key frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from veil.engine.anonymizer import Anonymizer
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.centerface import DEFAULT_SCALES, VIDEO_MAX_SIDE, VIDEO_SCALES, CenterFaceDetector
from veil.engine.detectors.fake import FakeDetector
from veil.engine.detectors.plates import MAX_SIDE, PlateCandidates
from veil.engine.errors import ModelError


def test_face_detector_settings_follow_purpose() -> None:
    photo = CenterFaceDetector(DetectorConfig(device="cpu"))
    video = CenterFaceDetector(DetectorConfig(device="cpu", purpose="video"))
    assert (photo.scales, photo.max_side) == (DEFAULT_SCALES, None)
    assert (video.scales, video.max_side) == (VIDEO_SCALES, VIDEO_MAX_SIDE)
    assert CenterFaceDetector(DetectorConfig(device="cpu", purpose="video"), max_side=320).max_side == 320


def test_plate_detector_reads_photos_and_key_frames_at_one_size() -> None:
    """Small plates need the photo size on key frames too (BENCHMARKS.md, "INT8 wired in")."""
    for config in (DetectorConfig(device="cpu"), DetectorConfig(device="cpu", purpose="video")):
        assert PlateCandidates(config).lines.max_side == MAX_SIDE


def test_load_builds_photo_and_video_detectors_with_model_files(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, str, Path | None]] = []

    def load(name: str, config: DetectorConfig) -> FakeDetector:
        built.append((name, config.purpose, config.model_path))
        return FakeDetector()

    monkeypatch.setattr("veil.engine.anonymizer.load_detector", load)
    anonymizer = Anonymizer.load(["face", "plate"], model_paths={"face": Path("mine.onnx")})
    assert built == [
        ("face", "photo", Path("mine.onnx")),
        ("plate", "photo", None),
        ("face", "video", Path("mine.onnx")),
        ("plate", "video", None),
    ]
    assert len(anonymizer.detectors) == len(anonymizer.video_detectors) == 2
    assert anonymizer.detectors[0] is not anonymizer.video_detectors[0]


def test_model_file_for_a_detector_not_run_is_refused() -> None:
    with pytest.raises(ModelError, match="given for tattoo"):
        Anonymizer.load(["face"], model_paths={"tattoo": Path("x.onnx")})


def test_one_model_file_for_every_detector_is_refused() -> None:
    with pytest.raises(ValueError, match="per detector"):
        Anonymizer.load(["face", "plate"], DetectorConfig(model_path=Path("x.onnx")))
