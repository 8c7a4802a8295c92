from __future__ import annotations

from pathlib import Path

import pytest

from veil.engine.batch import FileJob, plan_jobs, run_jobs, summarize
from veil.engine.errors import CorruptMediaError, OutputError, UnsupportedMediaError, VeilError
from veil.engine.report import MediaInfo, Report


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_plan_mirrors_directories_and_names_reports(tmp_path: Path) -> None:
    _touch(tmp_path / "in" / "a" / "b.jpg")
    _touch(tmp_path / "in" / ".hidden" / "c.jpg")
    single = _touch(tmp_path / "single.mp4")
    jobs = plan_jobs([tmp_path / "in", single], tmp_path / "out")
    assert [(str(j.relative), j.report_path.name) for j in jobs] == [
        ("a/b.jpg", "b.jpg.json"),
        ("single.mp4", "single.mp4.json"),
    ]
    assert jobs[0].output == (tmp_path / "out" / "a" / "b.jpg").resolve()


def test_detect_only_plans_no_media_output(tmp_path: Path) -> None:
    _touch(tmp_path / "in" / "x.png")
    [job] = plan_jobs([tmp_path / "in"], tmp_path / "out", write_media=False)
    assert job.output is None


@pytest.mark.parametrize(
    ("make_inputs", "out", "message"),
    [
        (lambda root: [root / "in"], "in/out", "inside input"),
        (lambda root: [root / "in"], "in", "inside input"),
        (lambda root: [root / "in" / "a.jpg"], "in", "overwrite an input"),
        (lambda root: [root / "in", root / "other"], "out", "would both write"),
        (lambda root: [root / "missing"], "out", "no such file"),
    ],
)
def test_plan_refuses_dangerous_outputs(tmp_path: Path, make_inputs: object, out: str, message: str) -> None:
    _touch(tmp_path / "in" / "a.jpg")
    _touch(tmp_path / "other" / "a.jpg")
    with pytest.raises(OutputError, match=message):
        plan_jobs(make_inputs(tmp_path), tmp_path / out)  # type: ignore[operator]


def test_symlinked_directory_is_not_followed(tmp_path: Path) -> None:
    _touch(tmp_path / "secret" / "s.jpg")
    _touch(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "link").symlink_to(tmp_path / "secret", target_is_directory=True)
    assert [str(j.relative) for j in plan_jobs([tmp_path / "in"], tmp_path / "out")] == ["a.jpg"]


def _report() -> Report:
    return Report(MediaInfo("image", 10, 10))


def test_failure_of_one_file_keeps_the_others_and_leaves_no_partial_output(tmp_path: Path) -> None:
    _touch(tmp_path / "in" / "good.jpg")
    _touch(tmp_path / "in" / "bad.jpg")
    _touch(tmp_path / "in" / "doc.pdf")

    def process(job: FileJob) -> Report:
        assert job.output is not None
        job.output.write_bytes(b"partial")
        if job.source.name == "bad.jpg":
            raise CorruptMediaError("truncated JPEG")
        return _report()

    outcomes = run_jobs(plan_jobs([tmp_path / "in"], tmp_path / "out"), process)
    assert {o.job.source.name: o.status for o in outcomes} == {
        "bad.jpg": "failed",
        "doc.pdf": "unsupported",
        "good.jpg": "done",
    }
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["good.jpg", "good.jpg.json"]
    summary = summarize(outcomes)
    assert summary["nb_files"] == {"IMAGE": 1, "VIDEO": 0}
    assert summary["size"] == {"IMAGE": 1, "VIDEO": 0}
    assert summary["failures"] == [
        {"path": str((tmp_path / "in" / "bad.jpg").resolve()), "reason": "truncated JPEG"}
    ]
    assert [s["path"].endswith("doc.pdf") for s in summary["skipped"]] == [True]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (CorruptMediaError("{name}: the image is truncated or damaged"), "failed"),
        (CorruptMediaError("{path}: the image is truncated or damaged"), "failed"),
        (UnsupportedMediaError("{name}: the image is truncated or damaged"), "unsupported"),
    ],
)
def test_an_outcome_gives_the_reason_without_naming_the_file_again(
    tmp_path: Path, error: VeilError, status: str
) -> None:
    """The summary shows each failed or skipped file next to its path, so the reason leaves the name out."""
    source = _touch(tmp_path / "in" / "bad.jpg").resolve()

    def process(job: FileJob) -> Report:
        raise type(error)(str(error).format(name=job.source.name, path=job.source))

    (outcome,) = run_jobs(plan_jobs([source], tmp_path / "out"), process)
    summary = summarize([outcome])

    assert outcome.status == status
    listed = summary["failures"] if status == "failed" else summary["skipped"]
    assert listed == [{"path": str(source), "reason": "the image is truncated or damaged"}]
