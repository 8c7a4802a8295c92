"""`veil eval` end to end: labels as COCO and YOLO, detections from files or from the scripted detectors,
the summary table, the report, and each refusal as one clear line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.evaluation_data import LABELLED, write_coco, write_detections, write_photos, write_yolo
from veil.cli.app import app
from veil.engine.detections import Detections

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval-cli")
    write_photos(root / "images")
    write_coco(root / "coco.json")
    write_yolo(root / "yolo")
    write_detections(root / "dets")
    return root


def _eval(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["eval", *args])
    return result.exit_code, result.output


def _results(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "results.json").read_text()))


@pytest.mark.parametrize(("labels", "fmt"), [("coco.json", "coco"), ("yolo", "yolo")])
def test_detections_folder_scored_by_size(dataset: Path, tmp_path: Path, labels: str, fmt: str) -> None:
    """GIVEN two labelled photos (COCO file or YOLO folder) and `veil detect`'s files for them
    WHEN `veil eval --detections` runs
    THEN the table and results.json give recall per size bucket, and the report a crop per miss."""
    out = tmp_path / "report"
    images, dets = str(dataset / "images"), str(dataset / "dets")
    code, output = _eval("--labels", str(dataset / labels), "--format", fmt, "--images", images,
                         "--detections", dets, "-o", str(out))  # fmt: skip
    assert code == 0, output
    assert re.search(r"face\s.*\b6\b.*\b4\b.*66\.7%.*0\.0%.*50\.0%.*100\.0%.*100\.0%.*1\.00", output)
    assert "missed boxes: 3" in output and f"report: {out / 'index.html'}" in output.replace("\n", "")
    results = _results(out)
    assert results["labels"]["face"]["recall"] == {
        "all": 0.6667,
        "<16": 0.0,
        "16-31": 0.5,
        "32-95": 1.0,
        "96+": 1.0,
    }
    page = (out / "index.html").read_text()
    assert "<svg" in page and len(re.findall(r'<img src="misses/', page)) == 3


def test_run_scores_the_detectors_on_the_photos(
    dataset: Path, tmp_path: Path, scripted_detectors: Callable[[Detections], None]
) -> None:
    """GIVEN a scripted detector finding a.png's 20 px and 130 px faces on every photo
    WHEN `veil eval --run` runs, and `veil eval --detections` on what `veil detect` writes
    THEN 2 of 6 faces are found and both boxes on sub/b.jpg are unmatched, the same both ways."""
    boxes = [box for label, box in LABELLED["a.png"] if label == "face"][1::2]
    scripted_detectors(Detections.from_boxes(boxes, [0.9, 0.9], "face"))
    out = tmp_path / "report"
    code, output = _eval("--labels", str(dataset / "coco.json"), "--format", "coco", "--images",
                         str(dataset / "images"), "--run", "-o", str(out))  # fmt: skip
    assert code == 0, output
    face = _results(out)["labels"]["face"]
    assert face["recall"] == {"all": 0.3333, "<16": 0.0, "16-31": 0.5, "32-95": 0.0, "96+": 1.0}
    assert face["unmatched_per_image"] == 1.0
    assert len(list((out / "misses").glob("*.jpg"))) == 5

    # `veil detect`'s files score the same: eval finds each photo's file where detect writes it.
    dets = tmp_path / "dets"
    assert runner.invoke(app, ["detect", str(dataset / "images"), "-o", str(dets)]).exit_code == 0
    code, output = _eval("--labels", str(dataset / "coco.json"), "--format", "coco", "--images",
                         str(dataset / "images"), "--detections", str(dets), "-o",
                         str(tmp_path / "r2"))  # fmt: skip
    assert code == 0, output
    assert _results(tmp_path / "r2")["labels"] == _results(out)["labels"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels", "{d}/nothing.json", "--format", "coco", "--detections", "{d}/dets"],
         "no such labels file or folder"),
        (["--labels", "{d}/coco.json", "--format", "yolo", "--detections", "{d}/dets"],
         "no data.yaml in it"),
        (["--labels", "{d}/coco.json", "--format", "kitti", "--detections", "{d}/dets"],
         "no annotation format named 'kitti'; Veil knows"),
        (["--labels", "{d}/coco.json", "--format", "coco", "--run"], "--run needs the labelled photos"),
        (["--labels", "{d}/coco.json", "--format", "coco"], "give either --detections DIR or --run"),
        (["--labels", "{d}/coco.json", "--format", "coco", "--images", "{d}/nowhere", "--run"],
         "no such folder of images"),
    ],
)  # fmt: skip
def test_refusals_are_one_clear_line(dataset: Path, tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _eval(*(a.format(d=dataset) for a in args), "-o", str(tmp_path / "out"))
    assert code == 2
    assert message in " ".join(output.replace("│", " ").split())  # Rich wraps long lines in a box
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "index.html").exists()
