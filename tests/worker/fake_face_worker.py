"""`veil worker`, as the command runs it, with the test clips' fake face detector: it finds the white
square (`find_square`), `VEIL_TEST_DETECT_DELAY_S` seconds per frame. For tests that run real worker
processes: `python -m tests.worker.fake_face_worker [veil worker options]`."""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from tests.engine.video_factory import find_square
from veil.cli.app import app
from veil.engine import anonymizer
from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.fake import FakeDetector


def load(name: str, config: DetectorConfig) -> FakeDetector:
    delay_s = float(os.environ.get("VEIL_TEST_DETECT_DELAY_S", "0"))

    def script(_call: int, frame: np.ndarray) -> Detections:
        time.sleep(delay_s)
        return find_square(frame) if name == "face" else Detections.empty()

    return FakeDetector(script=script)


if __name__ == "__main__":
    anonymizer.load_detector = load  # the worker's pool processes are forked from this one
    app(["worker", *sys.argv[1:]])
