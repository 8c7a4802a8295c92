"""Many files in, a mirrored tree of outputs and detection reports out.

For each input at relative path R, the anonymized file goes to OUT/R and its detections to OUT/R.json.
Files are written under a temporary name and renamed, so an interrupted run never leaves a half-written
file under a final name, and `skip_existing` can resume it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from veil.engine.errors import MediaError, OutputError, UnsupportedMediaError, VeilError
from veil.engine.media.kinds import MediaKind, media_kind
from veil.engine.report import Report

__all__ = ["FileJob", "FileOutcome", "Status", "plan_jobs", "run_jobs", "summarize"]

Status = Literal["done", "existing", "unsupported", "failed"]


@dataclass(frozen=True)
class FileJob:
    """One input file and where its results go; `output` is None when only detecting."""

    source: Path
    relative: Path
    output: Path | None
    report_path: Path

    @property
    def kind(self) -> MediaKind | None:
        return media_kind(self.source)


@dataclass(frozen=True)
class FileOutcome:
    job: FileJob
    status: Status
    report: Report | None = None
    error: str | None = None

    @property
    def size_bytes(self) -> int:
        return self.job.source.stat().st_size


def plan_jobs(inputs: Sequence[Path], out_dir: Path, write_media: bool = True) -> list[FileJob]:
    """Lists every file under the inputs with its output paths, in a stable order.

    Raises:
        OutputError: an input is missing, the output directory lies inside an input directory, an output
            would overwrite an input, or two inputs map to the same output.
    """
    out_dir = out_dir.resolve()
    jobs: dict[Path, FileJob] = {}
    for raw in inputs:
        root = raw.resolve()
        if not root.exists():
            raise OutputError(f"{raw}: no such file or directory")
        if root.is_dir() and (out_dir == root or root in out_dir.parents):
            raise OutputError(f"output directory {out_dir} is inside input {raw}; choose one outside it")
        for source, relative in _walk(root):
            job = _job(source, relative, out_dir, write_media)
            if job.report_path in jobs:
                raise OutputError(
                    f"{source} and {jobs[job.report_path].source} would both write {job.report_path}"
                )
            jobs[job.report_path] = job
    sources = {job.source for job in jobs.values()}
    for job in jobs.values():
        if job.output in sources or job.report_path in sources:
            raise OutputError(
                f"writing {job.output} would overwrite an input; choose another output directory"
            )
    return list(jobs.values())


def _walk(root: Path) -> Iterator[tuple[Path, Path]]:
    if root.is_file():
        yield root, Path(root.name)
        return
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if not name.startswith(".") and path.is_file():
                yield path, path.relative_to(root)


def _job(source: Path, relative: Path, out_dir: Path, write_media: bool) -> FileJob:
    output = out_dir / relative
    report_path = output.with_name(output.name + ".json")
    return FileJob(source, relative, output if write_media else None, report_path)


Process = Callable[[FileJob], Report]


def run_jobs(
    jobs: Sequence[FileJob],
    process: Process,
    workers: int = 1,
    skip_existing: bool = False,
    on_outcome: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """Runs `process` on every job, `workers` at a time; one file's failure never stops the others.

    `process(job)` writes `job.output` (when set) and returns the detections; this function writes the
    report next to it, both through temporary names.
    """

    def one(job: FileJob) -> FileOutcome:
        outcome = _run_one(job, process, skip_existing)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    if workers <= 1:
        return [one(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


def _run_one(job: FileJob, process: Process, skip_existing: bool) -> FileOutcome:
    if job.kind is None:
        return FileOutcome(job, "unsupported", error="not a photo or video type Veil handles")
    if skip_existing and _finished(job):
        return FileOutcome(job, "existing")
    try:
        report = _process_atomically(job, process)
    except UnsupportedMediaError as exc:
        return FileOutcome(job, "unsupported", error=_reason(exc, job))
    except (MediaError, VeilError) as exc:
        return FileOutcome(job, "failed", error=_reason(exc, job))
    except OSError as exc:
        return FileOutcome(job, "failed", error=f"cannot write output: {exc.strerror or exc}")
    return FileOutcome(job, "done", report)


def _reason(exc: VeilError, job: FileJob) -> str:
    """The error without the file's name in front ("a.jpg: the file is empty" gives "the file is empty"):
    an outcome is shown next to its path, which would otherwise name the file twice."""
    message = str(exc)
    for named in (f"{job.source}: ", f"{job.source.name}: "):
        message = message.removeprefix(named)
    return message


def _finished(job: FileJob) -> bool:
    return job.report_path.is_file() and (job.output is None or job.output.is_file())


def _process_atomically(job: FileJob, process: Process) -> Report:
    job.report_path.parent.mkdir(parents=True, exist_ok=True)
    final_output = job.output
    staged = job
    if final_output is not None:
        staged = FileJob(job.source, job.relative, _temporary(final_output), job.report_path)
    try:
        report = process(staged)
        if final_output is not None and staged.output is not None:
            os.replace(staged.output, final_output)
    finally:
        if staged.output is not None:
            staged.output.unlink(missing_ok=True)
    _write_json_atomically(job.report_path, report.to_json())
    return report


def _temporary(path: Path) -> Path:
    """A hidden name beside `path` with the same suffix, so encoders still pick the format by suffix."""
    return path.with_name(f".{path.stem}.veil-partial-{os.getpid()}{path.suffix}")


def _write_json_atomically(path: Path, document: str) -> None:
    temporary = path.with_name(f".{path.name}.veil-partial-{os.getpid()}")
    try:
        temporary.write_text(document + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def summarize(outcomes: Iterable[FileOutcome]) -> dict[str, Any]:
    """Counts in the shape of a BlurIt task result: files, bytes and detections per label, each per IMAGE
    and VIDEO (on video a detection is a track: one object followed across frames counts once), and one line
    per failed or skipped file."""
    nb_files: Counter[str] = Counter({"IMAGE": 0, "VIDEO": 0})
    size: Counter[str] = Counter({"IMAGE": 0, "VIDEO": 0})
    detections: dict[str, Counter[str]] = {"IMAGE": Counter(), "VIDEO": Counter()}
    failures: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    existing = 0
    for outcome in outcomes:
        if outcome.status == "done" and outcome.report is not None and outcome.job.kind is not None:
            kind = outcome.job.kind.upper()
            nb_files[kind] += 1
            size[kind] += outcome.size_bytes
            detections[kind].update(outcome.report.counts_by_label())
        elif outcome.status == "failed":
            failures.append({"path": str(outcome.job.source), "reason": outcome.error or "unknown error"})
        elif outcome.status == "unsupported":
            skipped.append({"path": str(outcome.job.source), "reason": outcome.error or "unsupported"})
        else:
            existing += 1
    return {
        "nb_files": dict(nb_files),
        "size": dict(size),
        "detections": {kind: dict(sorted(counts.items())) for kind, counts in detections.items()},
        "already_done": existing,
        "skipped": skipped,
        "failures": failures,
    }
