"""What `veil blur` writes belongs to the user as any new file does: its mode is 0666 less the umask, for
photos, videos and JSON alike (unlike the server's storage, which is owner-only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.engine.video_factory import make_video
from tests.helpers import modes_below, save_image, umask
from veil.cli.app import app
from veil.engine.detections import Detections

runner = CliRunner()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_follow_the_umask(tmp_path: Path, one_face: Detections, mask: int) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    save_image(source / "photo.png")
    save_image(source / "photo.jpg")
    (source / "clips").mkdir()
    make_video(source / "clips" / "clip.mp4", frames=3, audio=None)

    with umask(mask):
        result = runner.invoke(
            app, ["blur", str(source), "-o", str(out), "--summary-json", str(tmp_path / "s.json")]
        )

    assert result.exit_code == 0, result.output
    files = {name: mode for name, mode in modes_below(out).items() if (out / name).is_file()}
    assert set(files) == {
        "photo.png",
        "photo.png.json",
        "photo.jpg",
        "photo.jpg.json",
        "clips/clip.mp4",
        "clips/clip.mp4.json",
    }
    assert files == dict.fromkeys(files, 0o666 & ~mask)
    assert modes_below(tmp_path)["s.json"] == 0o666 & ~mask
