"""BlurIt-style tasks: a photo, a video or a whole directory below the key's file root, outputs there too
(with protocol "s3", objects in a bucket instead: `veil.worker.blurit_s3`).

`Task.input` is the request as the server accepted it (`veil.core.services.blurit`): input_image or
input_video with output_image/output_video and output_json, or input_directory with output_directory; each
spec is {protocol: "file", path, ...} with `path` relative to the owner key's file root (`key_file_root`).
Paths are reached again here, the way `veil.core.safety.paths` does it, because the tree may have changed
since: no link below the root is followed, for reading, writing or deleting. Outputs are made in a private
staging directory and moved into place when complete; they never replace an input of the task, and replace an
existing file only when the request set `overwrite`, or on a retry, which may find its own earlier outputs.

The result echoes the specs and adds `size` and `nb_files` per IMAGE and VIDEO; a directory task also lists
in `failures` the files it could not process and those it skipped (links, special files), with why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from veil.core.database.models import ApiKey, ExpiringPath, Task, utc_now
from veil.core.safety.paths import (
    Entry,
    FileRoot,
    OutputRefusedError,
    PathOutsideRootError,
    file_id,
    path_parts,
)
from veil.core.services.keys import key_file_root
from veil.engine.anonymizer import Anonymizer
from veil.engine.batch import FileJob, FileOutcome, run_jobs
from veil.engine.errors import MediaError
from veil.engine.report import Report
from veil.worker.blurit_common import (
    MEDIA_OUTPUTS,
    anonymizer_for,
    blurit_result,
    check_not_expired,
    process_file,
    video_frames,
)
from veil.worker.blurit_s3 import run_s3_blurit_task
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import Claim, Finished, TaskFailure, TaskStopped, Ticker, Usage
from veil.worker.scratch import attempt_folder

__all__ = ["run_blurit_task"]

_OUTSIDE = "Path outside the file root"

log = logging.getLogger(__name__)


def run_blurit_task(context: WorkerContext, claim: Claim, ticker: Ticker) -> Finished:
    """Runs a BlurIt file or directory task.

    Raises:
        TaskFailure: an input is missing or expired, a path goes through a link, or an output may not
            be written where asked.
        VeilError: the engine could not process the single input.
    """
    if any(isinstance(spec, dict) and spec.get("protocol") == "s3" for spec in claim.input.values()):
        return run_s3_blurit_task(context, claim, ticker)
    outputs = _Outputs(_key_root(context, claim), claim)
    with attempt_folder(context.settings, claim) as staging:
        if "input_directory" in claim.input:
            return _run_directory(context, claim, ticker, outputs, staging)
        return _run_file(context, claim, ticker, outputs, staging)


def _key_root(context: WorkerContext, claim: Claim) -> FileRoot:
    with context.sessions() as session:
        return key_file_root(session.get_one(ApiKey, claim.owner_id), context.settings.file_root_dir)


class _Outputs:
    """Moves finished outputs from staging to their place below the key's root, and remembers them.

    An output never replaces an input of the task (by any name: hard links are the same file), and
    replaces an existing file only when the request set `overwrite`, or on a retry, whose earlier attempt
    may have written it.
    """

    def __init__(self, root: FileRoot, claim: Claim) -> None:
        self.root = root
        self.inputs: set[tuple[int, int]] = set()
        self.written: list[str] = []
        self._task_id = claim.task_id
        self._replace = claim.input.get("overwrite") is True or claim.attempt > 1

    def put(self, staged: Path, relative: str) -> None:
        """Raises: PathOutsideRootError, OutputRefusedError, OSError (see `FileRoot.publish`)."""
        self.root.publish(staged, relative, replace=self._replace, inputs=self.inputs, tag=self._task_id)
        self.written.append(relative)


def _run_file(
    context: WorkerContext, claim: Claim, ticker: Ticker, outputs: _Outputs, staging: Path
) -> Finished:
    input_field = next(name for name in MEDIA_OUTPUTS if name in claim.input)
    spec = claim.input[input_field]
    check_not_expired(input_field, spec)
    anonymizer, write_media = anonymizer_for(context, claim)
    fields = [MEDIA_OUTPUTS[input_field]] if write_media else []
    targets = {
        field: str(claim.input[field]["path"]) for field in [*fields, "output_json"] if field in claim.input
    }
    staged = {field: staging / field / PurePosixPath(path).name for field, path in targets.items()}
    with _opened_input(outputs.root, input_field, str(spec["path"])) as (source, info):
        outputs.inputs.add(file_id(info))
        report = process_file(
            anonymizer, source, staged.get(MEDIA_OUTPUTS[input_field]), staged.get("output_json"), ticker
        )
    for field, path in targets.items():
        _put(outputs, staged[field], field, path)
    kind = report.media.type.upper()
    return Finished(
        result=blurit_result(claim.input, {kind: info.st_size}, {kind: 1}),
        usage=Usage(files=1, bytes=info.st_size, frames=video_frames(report)),
        expiring=_expiring_outputs(claim, outputs.root),
        after_commit=_auto_delete(spec, lambda: _delete_each(outputs.root, [str(spec["path"])])),
        discard=lambda: _remove_if_cancelled(context, claim, outputs),
    )


@contextmanager
def _opened_input(root: FileRoot, field: str, path: str) -> Iterator[tuple[Path, os.stat_result]]:
    """The input file opened now (`FileRoot.reading`), or the reason it cannot be, for the client."""
    with ExitStack() as stack:
        with _input_failures(field, path, "file"):
            opened = stack.enter_context(root.reading(path))
        yield opened


@contextmanager
def _input_failures(field: str, path: str, kind: str) -> Iterator[None]:
    """Turns an input `path` that is refused or not there (no such `kind`) into the task's failure."""
    try:
        yield
    except PathOutsideRootError as exc:
        raise TaskFailure(_OUTSIDE, f"{field} {path!r}: {exc}") from None
    except OSError:
        missing = f"{field} {path!r}: no such {kind} under the file root"
        raise TaskFailure("Input not found", missing) from None


def _put(outputs: _Outputs, staged: Path, field: str, path: str) -> None:
    with _output_failures(field, path):
        outputs.put(staged, path)


@contextmanager
def _output_failures(field: str, path: str) -> Iterator[None]:
    """Turns an output `path` that is refused, or blocked by a file where a directory must be (the tree
    changed after the task was accepted), into the task's failure."""
    try:
        yield
    except PathOutsideRootError as exc:
        raise TaskFailure(_OUTSIDE, f"{field} {path!r}: {exc}") from None
    except OutputRefusedError as exc:
        raise TaskFailure("Output not written", f"{field} {path!r}: {exc}") from None
    except NotADirectoryError:
        blocked = f"{field} {path!r}: a file is where a directory has to be"
        raise TaskFailure("Output not written", blocked) from None


def _run_directory(
    context: WorkerContext, claim: Claim, ticker: Ticker, outputs: _Outputs, staging: Path
) -> Finished:
    spec = claim.input["input_directory"]
    folder, target = str(spec["path"]), str(claim.input["output_directory"]["path"])
    entries = _input_entries(outputs.root, folder)
    outputs.inputs.update(file_id(entry.info) for entry in entries if entry.skipped is None)
    with _output_failures("output_directory", target):
        outputs.root.make_directory(target)
    anonymizer, write_media = anonymizer_for(context, claim)
    jobs = [_job(outputs.root, folder, entry, staging, write_media) for entry in entries if not entry.skipped]
    run = _DirectoryRun(outputs, folder, target, ticker, len(jobs))
    try:
        run_jobs(jobs, run.process(anonymizer), on_outcome=run.file_done)
    except TaskStopped:
        _remove_if_cancelled(context, claim, outputs)
        raise
    skipped = [{"path": _below(folder, e.relative), "reason": e.skipped} for e in entries if e.skipped]
    failures = sorted([*skipped, *run.failures], key=lambda failure: failure["path"])
    return Finished(
        result={**blurit_result(claim.input, run.size, run.nb_files), "failures": failures},
        usage=Usage(files=len(run.done), bytes=sum(run.size.values()), frames=run.frames),
        expiring=_expiring_outputs(claim, outputs.root),
        after_commit=_auto_delete(spec, lambda: _delete_sources(outputs.root, folder, run.done)),
        discard=lambda: _remove_if_cancelled(context, claim, outputs),
    )


def _input_entries(root: FileRoot, folder: str) -> list[Entry]:
    with _input_failures("input_directory", folder, "directory"):
        return list(root.walk(folder))


def _below(folder: str, relative: str) -> str:
    """`relative` below `folder`, in one spelling, as failures and deletions name it."""
    return "/".join((*path_parts(folder), relative))


def _job(root: FileRoot, folder: str, entry: Entry, staging: Path, write_media: bool) -> FileJob:
    """A job whose outputs go to staging; its `source` names the input for its kind and is never opened
    by path (`_DirectoryRun.process` reads it through the root)."""
    output = staging / entry.relative
    return FileJob(
        source=root.path / _below(folder, entry.relative),
        relative=Path(entry.relative),
        output=output if write_media else None,
        report_path=output.with_name(f"{output.name}.json"),
    )


class _DirectoryRun:
    """A directory task as its files finish: progress over all files (plus the running video's share),
    outputs moved into place, what was done and counted, and what failed."""

    def __init__(self, outputs: _Outputs, folder: str, target: str, ticker: Ticker, total_files: int) -> None:
        self._outputs = outputs
        self._folder = folder
        self._target = target
        self._ticker = ticker
        self._total = max(total_files, 1)
        self._finished = 0
        self._sizes: dict[Path, int] = {}
        self.done: list[str] = []
        self.failures: list[dict[str, str]] = []
        self.size = {"IMAGE": 0, "VIDEO": 0}
        self.nb_files = {"IMAGE": 0, "VIDEO": 0}
        self.frames = 0

    def process(self, anonymizer: Anonymizer) -> Callable[[FileJob], Report]:
        def one(job: FileJob) -> Report:
            with self._opened(job) as source:
                return anonymizer.process_file(source, job.output, self.progress)

        return one

    @contextmanager
    def _opened(self, job: FileJob) -> Iterator[Path]:
        path = _below(self._folder, job.relative.as_posix())
        with ExitStack() as stack:
            try:
                source, info = stack.enter_context(self._outputs.root.reading(path))
            except PathOutsideRootError as exc:
                raise MediaError(f"{job.relative.name}: {exc}") from exc
            except OSError as exc:  # gone, or replaced by something else, since the walk
                raise MediaError(f"{job.relative.name}: cannot be read ({exc.strerror or exc})") from exc
            self._sizes[job.relative] = info.st_size
            yield source

    def progress(self, done: int, total: int | None) -> None:
        self._ticker.progress((self._finished + (done / total if total else 0.0)) / self._total)

    def file_done(self, outcome: FileOutcome) -> None:
        self._finished += 1
        if outcome.status == "done" and outcome.report is not None:
            self._place(outcome.job, outcome.report)
        elif outcome.status == "failed":
            path = _below(self._folder, outcome.job.relative.as_posix())
            self.failures.append({"path": path, "reason": outcome.error or "unknown error"})
        self._ticker.progress(self._finished / self._total)

    def _place(self, job: FileJob, report: Report) -> None:
        relative = job.relative.as_posix()
        staged = [(job.output, relative), (job.report_path, f"{relative}.json")]
        for path, name in staged:
            if path is None:
                continue
            destination = _below(self._target, name)
            try:
                self._outputs.put(path, destination)
            except (PathOutsideRootError, OutputRefusedError, OSError) as exc:
                self.failures.append({"path": destination, "reason": f"output not written: {exc}"})
                return
        kind = report.media.type.upper()
        self.done.append(_below(self._folder, relative))
        self.nb_files[kind] += 1
        self.size[kind] += self._sizes[job.relative]
        self.frames += video_frames(report)


def _expiring_outputs(claim: Claim, root: FileRoot) -> list[ExpiringPath]:
    """One row per output given a `lifespan`: deleted that many seconds after the task completes, below
    the same root."""
    now = utc_now()
    return [
        ExpiringPath(
            path=str(spec["path"]),
            root=str(root.path),
            task_id=claim.task_id,
            expires_at=now + timedelta(seconds=int(spec["lifespan"])),
        )
        for name, spec in claim.input.items()
        if name.startswith("output_") and spec.get("lifespan")
    ]


def _auto_delete(spec: dict[str, Any], delete: Callable[[], None]) -> Callable[[], None]:
    # The server stores a real boolean; anything else (such as the string "False") keeps the input.
    return delete if spec.get("auto_delete") is True else lambda: None


def _delete_sources(root: FileRoot, folder: str, done: list[str]) -> None:
    """Deletes each input that was processed, then the folders left empty (the input folder too); files
    that failed or were skipped stay."""
    _delete_each(root, done)
    try:
        root.prune(folder)
    except PathOutsideRootError as exc:
        log.warning("auto_delete: empty folders below %r left: %s", folder, exc)


def _delete_each(root: FileRoot, paths: Iterable[str]) -> None:
    """Deletes each path below the root, never through a link (a link itself goes, not its target); one
    that cannot be deleted is logged and stays, as the task has already ended."""
    for path in paths:
        try:
            root.delete(path)
        except (PathOutsideRootError, OSError) as exc:
            log.warning("could not delete %r below the file root: %s", path, exc)


def _remove_if_cancelled(context: WorkerContext, claim: Claim, outputs: _Outputs) -> None:
    """Removes this attempt's outputs when the client cancelled the task; when another attempt took it
    over, the outputs are that attempt's as well (same paths) and stay."""
    with context.sessions() as session:
        status = session.get_one(Task, claim.task_id).status
    if status == "cancelled":
        _delete_each(outputs.root, outputs.written)
