"""BlurIt-style tasks: a photo, a video or a whole directory under the file root, outputs written there too.

`Task.input` is the request as the server accepted it (`veil.core.blurit`): input_image or input_video
with output_image/output_video and output_json, or input_directory with output_directory; each spec is
{protocol: "file", path, ...} with `path` relative to `settings.file_root_dir`, resolved again here because
the tree may have changed since. The result echoes those specs and adds `size` and `nb_files` per IMAGE and
VIDEO; a directory task also lists the files it could not process in `failures`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from veil.core.models import ExpiringPath, Task, utc_now
from veil.core.paths import resolve_under
from veil.engine.anonymizer import Anonymizer
from veil.engine.batch import FileOutcome, plan_jobs, run_jobs, summarize
from veil.engine.report import Report
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import Claim, Finished, TaskFailure, TaskStopped, Ticker, Usage
from veil.worker.options import engine_request

__all__ = ["run_blurit_task"]

_MEDIA_OUTPUTS = {"input_image": "output_image", "input_video": "output_video"}


def run_blurit_task(context: WorkerContext, claim: Claim, ticker: Ticker) -> Finished:
    """Runs a BlurIt file or directory task.

    Raises:
        TaskFailure: an input is missing or expired.
        PathOutsideRootError: a path now leads outside the file root (a symbolic link changed).
        VeilError: the engine could not process the single input or write its output.
    """
    if "input_directory" in claim.input:
        return _run_directory(context, claim, ticker)
    return _run_file(context, claim, ticker)


def _anonymizer(context: WorkerContext, claim: Claim) -> tuple[Anonymizer, bool]:
    request = engine_request(claim.operation, claim.parameters)
    return context.models.anonymizer(request), request.write_media


def _under_root(context: WorkerContext, spec: dict[str, Any]) -> Path:
    return resolve_under(context.settings.file_root_dir, str(spec["path"]))


def _run_file(context: WorkerContext, claim: Claim, ticker: Ticker) -> Finished:
    input_field = next(name for name in _MEDIA_OUTPUTS if name in claim.input)
    spec = claim.input[input_field]
    _check_not_expired(input_field, spec)
    source = _under_root(context, spec)
    if not source.is_file():
        raise TaskFailure(
            "Input not found", f"{input_field} {spec['path']!r}: no such file under the file root"
        )
    anonymizer, write_media = _anonymizer(context, claim)
    media_spec = claim.input.get(_MEDIA_OUTPUTS[input_field]) if write_media else None
    json_spec = claim.input.get("output_json")
    media_out = None if media_spec is None else _under_root(context, media_spec)
    json_out = None if json_spec is None else _under_root(context, json_spec)
    size = source.stat().st_size  # before auto_delete may remove it
    report = _process_file(anonymizer, source, media_out, json_out, claim.task_id, ticker)
    kind = report.media.type.upper()
    written = [path for path in (media_out, json_out) if path is not None]
    return Finished(
        result=_result(claim.input, {kind: size}, {kind: 1}),
        usage=Usage(files=1, bytes=size, frames=_video_frames(report)),
        expiring=_expiring_outputs(claim),
        after_commit=_auto_delete(spec, lambda: source.unlink(missing_ok=True)),
        discard=lambda: _remove_if_cancelled(context, claim, written),
    )


def _process_file(
    anonymizer: Anonymizer,
    source: Path,
    media_out: Path | None,
    json_out: Path | None,
    task_id: str,
    ticker: Ticker,
) -> Report:
    """Writes the media and JSON outputs through temporary names, so they appear only when complete."""
    staged = None if media_out is None else _staged(media_out, task_id)
    try:
        report = anonymizer.process_file(
            source, staged, lambda done, total: ticker.progress(done / (total or 1))
        )
        ticker.check()
        if json_out is not None:
            _write_json(json_out, report.to_json(), task_id)
        if media_out is not None and staged is not None:
            os.replace(staged, media_out)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    return report


def _staged(final: Path, task_id: str) -> Path:
    """A hidden name beside `final`, the same for every attempt: a retry replaces what a killed one left."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.stem}.veil-partial-{task_id}{final.suffix}")


def _write_json(path: Path, document: str, task_id: str) -> None:
    staged = _staged(path, task_id)
    try:
        staged.write_text(document + "\n", encoding="utf-8")
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _check_not_expired(field: str, spec: dict[str, Any]) -> None:
    expires_at = spec.get("expires_at")
    if expires_at is None:
        return
    moment = datetime.fromisoformat(str(expires_at))
    if moment.tzinfo is None:  # the server stores aware times; read a bare one as UTC
        moment = moment.replace(tzinfo=UTC)
    if moment <= utc_now():
        raise TaskFailure("Input expired", f"{field} expired at {expires_at}; it is not used after that time")


def _run_directory(context: WorkerContext, claim: Claim, ticker: Ticker) -> Finished:
    spec = claim.input["input_directory"]
    source = _under_root(context, spec)
    if not source.is_dir():
        raise TaskFailure(
            "Input not found", f"input_directory {spec['path']!r}: no such directory under the file root"
        )
    target = _under_root(context, claim.input["output_directory"])
    target.mkdir(parents=True, exist_ok=True)
    _remove_partials(target)
    anonymizer, write_media = _anonymizer(context, claim)
    jobs = plan_jobs([source], target, write_media=write_media)
    progress = _DirectoryProgress(ticker, len(jobs))
    try:
        outcomes = run_jobs(
            jobs,
            lambda job: anonymizer.process_file(job.source, job.output, progress.frames),
            on_outcome=progress.file_done,
        )
    except TaskStopped:
        _remove_if_cancelled(context, claim, progress.written)
        raise
    summary = summarize(outcomes)
    done = [outcome for outcome in outcomes if outcome.status == "done"]
    root = context.settings.file_root_dir
    failures = [
        {"path": Path(failure["path"]).relative_to(root).as_posix(), "reason": failure["reason"]}
        for failure in summary["failures"]
    ]
    return Finished(
        result={**_result(claim.input, summary["size"], summary["nb_files"]), "failures": failures},
        usage=Usage(
            files=len(done),
            bytes=sum(summary["size"].values()),
            frames=sum(_video_frames(outcome.report) for outcome in done if outcome.report is not None),
        ),
        expiring=_expiring_outputs(claim),
        after_commit=_auto_delete(spec, lambda: _delete_sources(source, done)),
        discard=lambda: _remove_if_cancelled(context, claim, progress.written),
    )


class _DirectoryProgress:
    """Progress over all files of a directory task (files done plus the running video's share), and the
    outputs written so far."""

    def __init__(self, ticker: Ticker, total_files: int) -> None:
        self._ticker = ticker
        self._total = max(total_files, 1)
        self._done = 0
        self.written: list[Path] = []

    def frames(self, done: int, total: int | None) -> None:
        self._ticker.progress((self._done + (done / total if total else 0.0)) / self._total)

    def file_done(self, outcome: FileOutcome) -> None:
        self._done += 1
        if outcome.status == "done":
            self.written += [path for path in (outcome.job.output, outcome.job.report_path) if path]
        self._ticker.progress(self._done / self._total)


def _remove_partials(target: Path) -> None:
    """Deletes what a killed attempt left half-written (the engine's `.NAME.veil-partial-*` files)."""
    for folder, _dirs, names in os.walk(target, followlinks=False):
        for name in names:
            if name.startswith(".") and ".veil-partial-" in name:
                (Path(folder) / name).unlink(missing_ok=True)


def _result(body: dict[str, Any], size: dict[str, int], nb_files: dict[str, int]) -> dict[str, Any]:
    """The request's input_*/output_* specs as given, with bytes and files processed per IMAGE and VIDEO."""
    echo = {name: spec for name, spec in body.items() if name.startswith(("input_", "output_"))}
    counts = {"IMAGE": 0, "VIDEO": 0}
    return {**echo, "size": {**counts, **size}, "nb_files": {**counts, **nb_files}}


def _video_frames(report: Report) -> int:
    return (report.media.frame_count or 0) if report.media.type == "video" else 0


def _expiring_outputs(claim: Claim) -> list[ExpiringPath]:
    """One row per output given a `lifespan`: deleted that many seconds after the task completes."""
    now = utc_now()
    return [
        ExpiringPath(
            path=str(spec["path"]),
            task_id=claim.task_id,
            expires_at=now + timedelta(seconds=int(spec["lifespan"])),
        )
        for name, spec in claim.input.items()
        if name.startswith("output_") and spec.get("lifespan")
    ]


def _auto_delete(spec: dict[str, Any], delete: Callable[[], None]) -> Callable[[], None]:
    # The server stores a real boolean; anything else (such as the string "False") keeps the input.
    return delete if spec.get("auto_delete") is True else lambda: None


def _delete_sources(folder: Path, done: list[FileOutcome]) -> None:
    """Deletes each input that was processed, then the folders left empty (the input folder too); files
    that failed or were skipped stay."""
    for outcome in done:
        outcome.job.source.unlink(missing_ok=True)
    for parent, _dirs, _names in sorted(os.walk(folder, followlinks=False), reverse=True):
        try:
            Path(parent).rmdir()
        except OSError:
            continue  # not empty


def _remove_if_cancelled(context: WorkerContext, claim: Claim, written: list[Path]) -> None:
    """Removes this attempt's outputs when the client cancelled the task; when another attempt took it
    over, the outputs are that attempt's as well (same paths) and stay."""
    with context.sessions() as session:
        status = session.get_one(Task, claim.task_id).status
    if status == "cancelled":
        for path in written:
            path.unlink(missing_ok=True)
