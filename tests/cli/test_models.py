"""`veil models derive`: the INT8 copies made once from the packaged weights, then found and reused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from veil.cli.app import app
from veil.engine.detectors.quantized import NETWORKS, derived_int8

runner = CliRunner()


@pytest.mark.weights
@pytest.mark.usefixtures("small_int8_recipes")
def test_derive_fills_the_cache_once_and_says_where(tmp_path: Path) -> None:
    first = runner.invoke(app, ["models", "derive", "--cache-dir", str(tmp_path)])

    assert first.exit_code == 0, first.output
    copies = [derived_int8(network, tmp_path) for network in NETWORKS]
    assert all(copy is not None and copy.is_file() for copy in copies)
    assert "deriving the INT8 copy" in first.output

    again = runner.invoke(app, ["models", "derive", "--cache-dir", str(tmp_path)])

    assert again.exit_code == 0, again.output
    assert again.output.count("already derived") == len(NETWORKS)


def test_a_cache_that_cannot_be_written_fails_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    result = runner.invoke(app, ["models", "derive", "--cache-dir", str(blocker / "models")])

    assert result.exit_code == 1
    assert "cannot derive the INT8" in result.output
    assert "FP32 weights will be used" in result.output


@pytest.mark.weights
@pytest.mark.usefixtures("small_int8_recipes")
def test_doctor_says_which_precision_runs_and_how_to_get_int8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = runner.invoke(app, ["doctor", "--device", "cpu"], env={"COLUMNS": "160"})

    assert before.exit_code == 0, before.output
    assert before.output.count("INT8") == 1  # the hint, no table row
    assert "No INT8 copy of plate text, CenterFace: FP32 runs instead" in before.output

    assert runner.invoke(app, ["models", "derive"]).exit_code == 0
    after = runner.invoke(app, ["doctor", "--device", "cpu"], env={"COLUMNS": "160"})

    assert after.exit_code == 0, after.output
    assert after.output.count("INT8") == 3  # the face and the plate rows, and where they came from
    assert f"derived at install from the packaged weights, in {tmp_path}" in after.output.replace("\n", "")
