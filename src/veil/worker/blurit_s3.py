"""BlurIt-style tasks with `protocol: "s3"` (`veil.core.services.blurit_s3`): objects in, objects out.

The object keys are checked again against the key's prefix, as the settings may have changed since the
task was accepted. Each input is downloaded to the attempt's scratch folder, the engine runs on local
files, and each output is uploaded whole once made; the scratch folder goes when the attempt ends. An
output replaces an existing object only when the request set `overwrite`, or on a retry, whose earlier
attempt may have written it.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from veil.core.database.models import ApiKey, Task
from veil.core.services.blurit_s3 import S3Files, S3PathRefusedError, media_below, object_key, s3_files
from veil.engine.anonymizer import Anonymizer, Progress
from veil.engine.errors import VeilError
from veil.engine.report import Report
from veil.worker.blurit_common import (
    MEDIA_OUTPUTS,
    anonymizer_for,
    blurit_result,
    check_not_expired,
    process_file,
    video_frames,
)
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import Claim, Finished, TaskFailure, TaskStopped, Ticker, Usage
from veil.worker.scratch import attempt_folder

__all__ = ["run_s3_blurit_task"]


def run_s3_blurit_task(context: WorkerContext, claim: Claim, ticker: Ticker) -> Finished:
    """Runs a BlurIt file or directory task whose paths are S3 object keys.

    Raises:
        TaskFailure: protocol s3 is not set up here, a key is outside the API key's prefix, the input
            is missing or expired, or an output exists that may not be replaced.
        VeilError: the engine could not process the single input.
    """
    files = s3_files(context.settings)
    if files is None:
        raise TaskFailure("Protocol s3 not set up", "this worker has no VEIL_S3_FILES_URL")
    with context.sessions() as session:
        owner = session.get_one(ApiKey, claim.owner_id)
        prefix = files.prefix_of(owner.id, is_admin=owner.is_admin)
    keys = {field: _key(field, spec, files, prefix) for field, spec in _specs(claim).items()}
    outputs = _Outputs(files, claim)
    with attempt_folder(context.settings, claim) as scratch:
        if "input_directory" in keys:
            return _run_directory(context, claim, ticker, keys, outputs, scratch)
        return _run_file(context, claim, ticker, keys, outputs, scratch)


def _specs(claim: Claim) -> dict[str, dict[str, Any]]:
    return {
        field: spec
        for field, spec in claim.input.items()
        if field.startswith(("input_", "output_")) and isinstance(spec, dict)
    }


def _key(field: str, spec: dict[str, Any], files: S3Files, prefix: str) -> str:
    try:
        return object_key(spec, files, prefix)
    except S3PathRefusedError as exc:
        raise TaskFailure("Path outside your prefix", f"{field} {spec.get('path')!r}: {exc}") from None


class _Outputs:
    """Uploads finished outputs to their keys, and remembers them."""

    def __init__(self, files: S3Files, claim: Claim) -> None:
        self.files = files
        self.written: list[str] = []
        self._replace = claim.input.get("overwrite") is True or claim.attempt > 1

    def put(self, staged: Path, field: str, key: str) -> None:
        if not self._replace and self.files.bucket.exists(key):
            refused = f"{field} {key!r}: an object was written there since the task was accepted"
            raise TaskFailure("Output not written", refused)
        self.files.bucket.commit(staged, key)
        self.written.append(key)

    def remove_if_cancelled(self, context: WorkerContext, claim: Claim) -> None:
        """Removes this attempt's outputs when the client cancelled the task (another attempt that took
        it over writes the same keys, so they stay then)."""
        with context.sessions() as session:
            status = session.get_one(Task, claim.task_id).status
        if status == "cancelled":
            for key in self.written:
                self.files.bucket.delete(key)


def _run_file(
    context: WorkerContext,
    claim: Claim,
    ticker: Ticker,
    keys: dict[str, str],
    outputs: _Outputs,
    scratch: Path,
) -> Finished:
    input_field = next(name for name in MEDIA_OUTPUTS if name in keys)
    check_not_expired(input_field, claim.input[input_field])
    anonymizer, write_media = anonymizer_for(context, claim)
    fields = [MEDIA_OUTPUTS[input_field]] if write_media else []
    targets = {field: keys[field] for field in [*fields, "output_json"] if field in keys}
    staged = {field: scratch / field / PurePosixPath(key).name for field, key in targets.items()}
    try:
        with outputs.files.bucket.local_copy(keys[input_field], scratch) as source:
            size = source.stat().st_size
            media = staged.get(MEDIA_OUTPUTS[input_field])
            report = process_file(anonymizer, source, media, staged.get("output_json"), ticker)
    except FileNotFoundError:
        raise TaskFailure("Input not found", f"{input_field} {keys[input_field]!r}: no such object") from None
    for field, key in targets.items():
        outputs.put(staged[field], field, key)
    kind = report.media.type.upper()
    delete_input = claim.input[input_field].get("auto_delete") is True
    return Finished(
        result=blurit_result(claim.input, {kind: size}, {kind: 1}),
        usage=Usage(files=1, bytes=size, frames=video_frames(report)),
        after_commit=lambda: outputs.files.bucket.delete(keys[input_field]) if delete_input else None,
        discard=lambda: outputs.remove_if_cancelled(context, claim),
    )


def _run_directory(
    context: WorkerContext,
    claim: Claim,
    ticker: Ticker,
    keys: dict[str, str],
    outputs: _Outputs,
    scratch: Path,
) -> Finished:
    source, target = keys["input_directory"], keys["output_directory"]
    relatives = media_below(outputs.files, source)
    anonymizer, write_media = anonymizer_for(context, claim)
    counts, total = _Counts(), max(len(relatives), 1)
    try:
        for index, relative in enumerate(relatives):
            made = scratch / "out" / relative

            def progress(done: int, of: int | None, index: int = index) -> None:
                ticker.progress((index + (done / of if of else 0.0)) / total)

            try:
                report, size = _one_file(
                    anonymizer, outputs, f"{source}/{relative}", scratch, made, write_media, progress
                )
            except (VeilError, OSError) as exc:  # one file's failure never stops the others
                counts.failures.append({"path": f"{source}/{relative}", "reason": str(exc)})
                continue
            ticker.check()
            for name in ([relative] if write_media else []) + [f"{relative}.json"]:
                outputs.put(scratch / "out" / name, "output_directory", f"{target}/{name}")
            counts.add(report, size, f"{source}/{relative}")
    except TaskStopped:
        outputs.remove_if_cancelled(context, claim)
        raise
    delete_inputs = claim.input["input_directory"].get("auto_delete") is True
    return Finished(
        result={**blurit_result(claim.input, counts.size, counts.nb_files), "failures": counts.failures},
        usage=Usage(files=len(counts.done), bytes=sum(counts.size.values()), frames=counts.frames),
        after_commit=lambda: _delete_all(outputs.files, counts.done) if delete_inputs else None,
        discard=lambda: outputs.remove_if_cancelled(context, claim),
    )


def _one_file(
    anonymizer: Anonymizer,
    outputs: _Outputs,
    key: str,
    scratch: Path,
    made: Path,
    write_media: bool,
    progress: Progress,
) -> tuple[Report, int]:
    """Downloads `key`, runs the engine on it, and writes its outputs at `made` and `made`.json."""
    made.parent.mkdir(parents=True, exist_ok=True)
    with outputs.files.bucket.local_copy(key, scratch) as local:
        size = local.stat().st_size
        report = anonymizer.process_file(local, made if write_media else None, progress)
    made.with_name(f"{made.name}.json").write_text(report.to_json() + "\n", encoding="utf-8")
    return report, size


def _delete_all(files: S3Files, keys: list[str]) -> None:
    for key in keys:
        files.bucket.delete(key)


class _Counts:
    """What a directory task processed so far: per IMAGE and VIDEO, and which inputs were done."""

    def __init__(self) -> None:
        self.size = {"IMAGE": 0, "VIDEO": 0}
        self.nb_files = {"IMAGE": 0, "VIDEO": 0}
        self.frames = 0
        self.done: list[str] = []
        self.failures: list[dict[str, str]] = []

    def add(self, report: Report, size: int, key: str) -> None:
        kind = report.media.type.upper()
        self.size[kind] += size
        self.nb_files[kind] += 1
        self.frames += video_frames(report)
        self.done.append(key)
