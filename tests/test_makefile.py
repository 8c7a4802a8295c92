"""`make browser`, which `make test` runs first: how it gets Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _make_browser(tmp_path: Path, user_id: int) -> tuple[str, str]:
    """Runs `make browser` with no Chromium, with fake `id` and `apt-get` first on the PATH; returns the
    output and the arguments apt-get got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-get.calls"
    _fake(bin_dir, "id", f"echo {user_id}")
    _fake(bin_dir, "apt-get", f'echo "apt-get running"; echo "$@" >> {calls}')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "browser", f"CHROMIUM={tmp_path}/no-chromium"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout, calls.read_text() if calls.exists() else ""


def test_as_root_it_says_it_installs_chromium_then_installs_it_without_recommends(tmp_path: Path) -> None:
    output, apt_calls = _make_browser(tmp_path, user_id=0)

    lines = output.splitlines()
    assert lines[0].startswith("Installing Chromium for the browser tests"), output
    assert "--no-install-recommends" in lines[0]
    assert lines.index("apt-get running") > 0
    assert apt_calls.splitlines() == ["install -y --no-install-recommends chromium"]


def test_as_another_user_it_says_how_to_install_chromium(tmp_path: Path) -> None:
    output, apt_calls = _make_browser(tmp_path, user_id=1000)

    assert "sudo apt-get install -y --no-install-recommends chromium" in output
    assert apt_calls == ""


def test_make_test_gets_the_browser_before_anything_else() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "-p", "-n", "test"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    rule = next(line for line in result.stdout.splitlines() if line.startswith("test:"))
    assert rule.split(":", 1)[1].split()[0] == "browser"
