"""Veil: find faces and licence plates in photos and videos, and obscure them."""

from veil.engine.anonymizer import AnonymizeOptions, Anonymizer
from veil.engine.api import anonymize
from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector, DetectorConfig, DetectorInfo
from veil.engine.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    ModelError,
    OutputError,
    UnsupportedMediaError,
    VeilError,
)
from veil.engine.redactors.style import ObscureStyle, StylesByLabel
from veil.engine.report import Report
from veil.engine.video import VideoOptions

__all__ = [
    "AnonymizeOptions",
    "Anonymizer",
    "CorruptMediaError",
    "Detections",
    "Detector",
    "DetectorConfig",
    "DetectorInfo",
    "MediaError",
    "MediaTooLargeError",
    "ModelError",
    "ObscureStyle",
    "OutputError",
    "Report",
    "StylesByLabel",
    "UnsupportedMediaError",
    "VeilError",
    "VideoOptions",
    "anonymize",
]
