"""`veil blur` and `veil detect` end to end, with scripted detectors so no weights are needed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import FACE_BOX, load_rgb, save_image, validate_report
from veil.cli.app import app
from veil.engine.detections import Detections

runner = CliRunner()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _box_region(array: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in FACE_BOX)
    return array[y1:y2, x1:x2]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    save_image(root / "a.png")
    save_image(root / "sub" / "b.png")
    (root / "notes.txt").write_text("not media")
    return root


def test_blur_mirrors_tree_obscures_box_and_keeps_the_rest(
    photos: Path, tmp_path: Path, one_face: Detections
) -> None:
    """GIVEN two photos in a tree and a detector that reports one face
    WHEN `veil blur` runs on the directory
    THEN each photo gets a blurred copy and a valid JSON at its mirrored path; the inputs are untouched."""
    before = _tree(photos)
    out = tmp_path / "out"
    result = runner.invoke(app, ["blur", str(photos), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _tree(photos) == before
    for relative in ("a.png", "sub/b.png"):
        original, blurred = load_rgb(photos / relative), load_rgb(out / relative)
        assert _box_region(blurred).std() < _box_region(original).std() / 3
        assert np.array_equal(blurred[:, 150:], original[:, 150:])
        document = validate_report(out / f"{relative}.json")
        assert document["media"]["type"] == "image"
        [frame] = document["frames"]
        [box] = frame["detections"]
        assert box["label"] == "face" and box["box"] == list(FACE_BOX)
    assert not (out / "notes.txt").exists()
    assert "notes.txt" in result.output and "failures: 0" in result.output
    assert not [p for p in out.rglob(".*")], "temporary files left behind"


def test_detect_writes_reports_only(photos: Path, tmp_path: Path, one_face: Detections) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["detect", str(photos), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "a.png.json",
        "sub/b.png.json",
    ]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "empty"),
        ("truncated.png", None, "truncated"),
        ("text.jpg", b"this is not a picture at all", "not"),
    ],
)
def test_bad_file_fails_alone_with_a_reason(
    tmp_path: Path, one_face: Detections, name: str, content: bytes | None, reason: str
) -> None:
    root = tmp_path / "in"
    save_image(root / "good.png")
    bad = root / name
    if content is None:
        whole = save_image(tmp_path / "whole.png").read_bytes()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    out = tmp_path / "out"
    result = runner.invoke(app, ["blur", str(root), "-o", str(out)])
    assert result.exit_code == 1
    assert (out / "good.png").is_file() and (out / "good.png.json").is_file()
    assert not (out / name).exists() and not (out / f"{name}.json").exists()
    failed_lines = [line for line in result.output.splitlines() if "failed" in line and name in line]
    assert failed_lines, result.output
    for line in failed_lines:
        assert reason in line.lower()
        assert line.count(name) == 1, f"the file is named once: {line}"


def test_output_inside_input_is_refused(photos: Path, one_face: Detections) -> None:
    result = runner.invoke(app, ["blur", str(photos), "-o", str(photos / "out")])
    assert result.exit_code == 2
    assert "inside input" in result.output
    assert not (photos / "out").exists()


def test_skip_existing_resumes_without_rewriting(photos: Path, tmp_path: Path, one_face: Detections) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["blur", str(photos), "-o", str(out)]).exit_code == 0
    (out / "sub" / "b.png").unlink()
    first_mtime = (out / "a.png").stat().st_mtime_ns
    result = runner.invoke(app, ["blur", str(photos), "-o", str(out), "--skip-existing", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert (out / "a.png").stat().st_mtime_ns == first_mtime
    assert (out / "sub" / "b.png").is_file()
    assert "already done (skipped): 1" in result.output


def test_fill_style_per_label(photos: Path, tmp_path: Path, one_face: Detections) -> None:
    out = tmp_path / "out"
    args = [
        "blur",
        str(photos / "a.png"),
        "-o",
        str(out),
        "--style",
        "face:method=fill,color=#ff0000,shape=rectangle",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    x1, y1, x2, y2 = (int(v) for v in FACE_BOX)
    assert tuple(load_rgb(out / "a.png")[(y1 + y2) // 2, (x1 + x2) // 2]) == (255, 0, 0)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--style", "face:method=smear"], "method 'smear'"),
        (["--style", "nolabel"], "LABEL:KEY=VALUE"),
        (["--color", "#12"], "#RRGGBB"),
        (["--device", "tpu"], "auto, cpu or cuda"),
    ],
)
def test_bad_options_say_why(
    photos: Path, tmp_path: Path, one_face: Detections, flag: list[str], message: str
) -> None:
    result = runner.invoke(app, ["blur", str(photos), "-o", str(tmp_path / "out"), *flag])
    assert result.exit_code == 2
    assert message in result.output


def test_missing_input_is_an_error(tmp_path: Path, one_face: Detections) -> None:
    result = runner.invoke(app, ["blur", str(tmp_path / "nothing"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no such file or directory" in result.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("my.onnx", "use DETECTOR=FILE"),
        ("tattoo=my.onnx", "a model file is given for tattoo"),
        ("face=/nonexistent/centerface.onnx", "cannot read CenterFace model"),
    ],
)
def test_model_override_errors_are_clear(photos: Path, tmp_path: Path, spec: str, message: str) -> None:
    result = runner.invoke(app, ["blur", str(photos), "-o", str(tmp_path / "out"), "--model", spec])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_summary_json_has_blurit_counts(photos: Path, tmp_path: Path, one_face: Detections) -> None:
    summary = tmp_path / "summary.json"
    args = ["blur", str(photos), "-o", str(tmp_path / "out"), "--summary-json", str(summary)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "found in photos: 2 faces" in result.output and "found in videos" not in result.output
    document = json.loads(summary.read_text())
    assert document["nb_files"] == {"IMAGE": 2, "VIDEO": 0}
    assert document["size"]["IMAGE"] == sum(p.stat().st_size for p in photos.rglob("*.png"))
    assert document["detections"] == {"IMAGE": {"face": 2}, "VIDEO": {}}
    assert [Path(s["path"]).name for s in document["skipped"]] == ["notes.txt"]
    assert document["failures"] == []
