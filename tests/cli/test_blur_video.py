"""`veil blur` on a video tree: the mirrored output keeps frames, timing and audio; the report is valid."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from tests.engine.video_factory import find_square, make_audio_only, make_video
from tests.helpers import validate_report
from veil.cli.app import app
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.fake import FakeDetector

runner = CliRunner()


@pytest.fixture
def square_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    """The face detector reports the clip's bright square; the others find nothing."""

    def load(name: str, config: DetectorConfig) -> FakeDetector:
        return (
            FakeDetector(script=lambda _call, frame: find_square(frame)) if name == "face" else FakeDetector()
        )

    monkeypatch.setattr("veil.engine.anonymizer.load_detector", load)


def _summary(path: Path) -> tuple[int, list[str], float]:
    with av.open(str(path)) as container:
        kinds = sorted(s.type for s in container.streams)
        frames = sum(1 for _ in container.decode(video=0))
        return frames, kinds, round(float(container.duration or 0) / 1e6, 1)


def test_blur_video_tree(tmp_path: Path, square_faces: None) -> None:
    """GIVEN a folder with a video that has an audio track
    WHEN `veil blur` runs on the folder
    THEN the mirrored video keeps frame count, duration and audio, and its report lists a face per frame."""
    (tmp_path / "in" / "cams").mkdir(parents=True)
    clip = make_video(tmp_path / "in" / "cams" / "door.mp4", frames=40)
    out = tmp_path / "out"
    summary = tmp_path / "summary.json"
    result = runner.invoke(
        app, ["blur", str(tmp_path / "in"), "-o", str(out), "--summary-json", str(summary)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(summary.read_text())["detections"] == {"IMAGE": {}, "VIDEO": {"face": 1}}
    written = out / "cams" / "door.mp4"
    assert _summary(written) == _summary(clip.path)
    assert _summary(written)[1] == ["audio", "video"]
    document = validate_report(out / "cams" / "door.mp4.json")
    assert document["media"]["type"] == "video"
    assert document["media"]["frame_count"] == 40
    assert len(document["frames"]) == 40
    sources = {d["source"] for frame in document["frames"] for d in frame["detections"]}
    assert sources == {"detected", "tracked"}
    assert "VIDEO" in result.output
    assert "found in videos: 1 face track (each followed across frames)" in result.output
    assert "found in photos" not in result.output


def test_no_audio_drops_the_audio_track(tmp_path: Path, square_faces: None) -> None:
    clip = make_video(tmp_path / "door.mp4", frames=20)
    out = tmp_path / "out"
    result = runner.invoke(app, ["blur", str(clip.path), "-o", str(out), "--no-audio"])
    assert result.exit_code == 0, result.output
    assert _summary(out / "door.mp4")[1] == ["video"]


def test_video_without_video_stream_fails_alone(tmp_path: Path, square_faces: None) -> None:
    (tmp_path / "in").mkdir()
    make_audio_only(tmp_path / "in" / "voice.mp4")
    make_video(tmp_path / "in" / "ok.mp4", frames=10, audio=None)
    result = runner.invoke(app, ["blur", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert (tmp_path / "out" / "ok.mp4").is_file()
    assert not (tmp_path / "out" / "voice.mp4").exists()
    line = next(line for line in result.output.splitlines() if "failed" in line and "voice.mp4" in line)
    assert "video" in line.lower()
