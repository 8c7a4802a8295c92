"""`veil.anonymize`: one call on an array or a file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

import veil
from tests.helpers import FACE_BOX, load_rgb, noise_image, save_image
from veil.engine.detections import Detections
from veil.engine.detectors.fake import FakeDetector


@pytest.fixture
def anonymizer() -> veil.Anonymizer:
    return veil.Anonymizer([FakeDetector(Detections.from_boxes([FACE_BOX], [0.9], "face"))])


def test_array_in_new_array_and_detections_out(anonymizer: veil.Anonymizer) -> None:
    frame = np.ascontiguousarray(noise_image()[:, :, ::-1])
    original = frame.copy()
    out, detections = veil.anonymize(frame, anonymizer=anonymizer)
    assert np.array_equal(frame, original), "input array modified"
    assert detections.xyxy.tolist() == [list(FACE_BOX)]
    x1, y1, x2, y2 = (int(v) for v in FACE_BOX)
    assert out[y1:y2, x1:x2].std() < frame[y1:y2, x1:x2].std() / 3
    assert np.array_equal(out[:, 150:], frame[:, 150:])


def test_file_in_file_out_returns_report(tmp_path: Path, anonymizer: veil.Anonymizer) -> None:
    source = save_image(tmp_path / "a.png")
    report = veil.anonymize(source, tmp_path / "b.png", anonymizer=anonymizer)
    assert report.counts_by_label() == {"face": 1}
    assert report.to_dict()["media"] == {
        "type": "image", "width": 200, "height": 150, "fps": None, "frame_count": None, "duration": None
    }  # fmt: skip
    assert not np.array_equal(load_rgb(tmp_path / "b.png"), load_rgb(source))


def test_file_without_output_only_detects(tmp_path: Path, anonymizer: veil.Anonymizer) -> None:
    source = save_image(tmp_path / "a.png")
    report = veil.anonymize(str(source), anonymizer=anonymizer)
    assert len(report.frames) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_output_equal_to_input_is_refused(tmp_path: Path, anonymizer: veil.Anonymizer) -> None:
    source = save_image(tmp_path / "a.png")
    before = source.read_bytes()
    with pytest.raises(veil.OutputError, match="never overwrites an input"):
        veil.anonymize(source, tmp_path / "." / "a.png", anonymizer=anonymizer)
    assert source.read_bytes() == before


def test_unsupported_type_is_a_media_error(tmp_path: Path, anonymizer: veil.Anonymizer) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(veil.UnsupportedMediaError):
        veil.anonymize(notes, anonymizer=anonymizer)


def test_report_to_json_is_the_text_of_to_dict(tmp_path: Path, anonymizer: veil.Anonymizer) -> None:
    """As in other Python libraries, to_json() gives JSON text (compact or indented), to_dict() the dict."""
    report = veil.anonymize(save_image(tmp_path / "a.png"), anonymizer=anonymizer)
    document = report.to_dict()
    assert document["schema"] == "veil.detections/1" and document["frames"][0]["detections"]
    text = report.to_json()
    assert isinstance(text, str) and "\n" not in text
    assert json.loads(text) == document
    indented = report.to_json(indent=2)
    assert indented.startswith('{\n  "schema"') and json.loads(indented) == document


def test_detectors_of_a_photo_run_side_by_side() -> None:
    """GIVEN two detectors that each wait for the other WHEN a frame is detected THEN both answer (one after
    the other, the barrier would time out) and their boxes are merged."""
    meeting = threading.Barrier(2, timeout=5)

    def waiting(label: str) -> FakeDetector:
        def script(_call: int, _frame: np.ndarray) -> Detections:
            meeting.wait()
            return Detections.from_boxes([[10, 10, 50, 50]], [0.9], label)

        return FakeDetector(script=script)

    found = veil.Anonymizer([waiting("face"), waiting("plate")]).detect(np.zeros((100, 100, 3), np.uint8))

    assert sorted(found.label.tolist()) == ["face", "plate"]
