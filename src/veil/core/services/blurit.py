"""BlurIt-style tasks: paths below the key's file root in, paths below it out.

A request names its input and outputs as `{protocol: "file", path}` specs, relative to the file root of
the key that sends it (`veil.core.services.keys.key_file_root`: its own folder, unless set otherwise).
Everything a client could use to reach outside that root (absolute paths, `..`, a symbolic link anywhere below
the root) is refused here, with the offending field named, before a task exists. So is an output that would
replace an input of the task (by any spelling of its path, or a hard link to it), and one that would
replace an existing file unless the request sets `overwrite`. The task keeps the request as accepted in
`Task.input`; the worker checks again, writes the outputs and counts what it processed in `Task.result`
(`size` and `nb_files`, per IMAGE and VIDEO).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_serializer,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.core.database.models import ApiKey, Task, utc_now
from veil.core.errors import InvalidInputError, NotFoundError
from veil.core.parameters import AnonymizeParameters
from veil.core.queue import MediaKind, route
from veil.core.safety.paths import (
    NOT_FOLLOWED,
    Entry,
    FileRoot,
    OutputRefusedError,
    PathOutsideRootError,
    check_replaceable,
    file_id,
    path_parts,
)
from veil.core.schemas import TaskError, TaskStatus
from veil.core.services.blurit_s3 import S3Files, check_s3_directory_task, check_s3_file_task
from veil.core.services.keys import key_file_root
from veil.engine.media.kinds import media_kind

__all__ = [
    "BlurItResult",
    "BlurItTask",
    "DirectoryInput",
    "DirectoryTaskCreate",
    "FileInput",
    "FileSpec",
    "FileTaskCreate",
    "MediaCounts",
    "OutputSpec",
    "TaskCreated",
    "create_directory_task",
    "create_file_task",
    "get_blurit_task",
]


def _flag(value: object) -> bool:
    # The BlurIt documentation writes booleans as the strings "True" and "False"; accept those and JSON's.
    if isinstance(value, bool):
        return value
    if value in ("True", "False"):
        return value == "True"
    raise ValueError('must be true, false, "True" or "False"')


Flag = Annotated[
    bool,
    PlainValidator(_flag),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["True", "False"]}]}),
]
# How the seed's GET answer writes a flag; the task itself keeps a real boolean.
FlagText = Annotated[
    Literal["True", "False"], BeforeValidator(lambda value: str(value) if isinstance(value, bool) else value)
]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC form; a ValueError makes it a 422
        raise ValueError("is outside the range of times") from None


UTCDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class FileSpec(BaseModel):
    """A place under the key's file root (protocol "file") or below its prefix in S3 (protocol "s3")."""

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["file", "s3"] = Field(
        description='"file": `path` is relative to the key\'s file root. "s3": `path` is the object key (for '
        "a directory, a key prefix) in `bucket`, below the key's own prefix "
        "(see `veil.core.services.blurit_s3`)."
    )
    bucket: str | None = Field(
        default=None, validate_default=True, description='With protocol "s3" only.', examples=["media"]
    )
    path: str = Field(min_length=1, examples=["photos/image.jpg"])

    @field_validator("bucket")
    @classmethod
    def _bucket_for_s3(cls, bucket: str | None, info: ValidationInfo) -> str | None:
        if (info.data.get("protocol") == "s3") != (bucket is not None):
            raise ValueError('give bucket with protocol "s3", and only then')
        return bucket

    @model_serializer(mode="wrap")
    def _without_bucket_for_files(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A "file" spec is shown as BlurIt shows it, with no bucket at all.
        data: dict[str, Any] = handler(self)
        if data.get("bucket") is None:
            data.pop("bucket", None)
        return data


class OutputSpec(FileSpec):
    lifespan: int | None = Field(
        default=None, gt=0, description="Seconds after the task finishes until the output is deleted."
    )


class DirectoryInput(FileSpec):
    auto_delete: Flag = Field(default=False, description="Delete the input once the task has succeeded.")


class FileInput(DirectoryInput):
    expires_at: UTCDatetime | None = Field(
        default=None,
        description="With a time zone; a past time is refused. The input is not used after this time.",
        examples=["2042-01-01T00:00:00+02:00"],
    )


class FileTaskCreate(BaseModel):
    """One photo or video: exactly one input, and the output of the same kind and/or detections JSON."""

    model_config = ConfigDict(extra="forbid")

    input_image: FileInput | None = None
    input_video: FileInput | None = None
    output_image: OutputSpec | None = None
    output_video: OutputSpec | None = None
    output_json: OutputSpec | None = Field(default=None, description="Detections as veil.detections/1 JSON.")
    overwrite: Flag = Field(
        default=False, description="Replace outputs that exist already; without it they are refused (422)."
    )
    parameters: AnonymizeParameters = Field(default_factory=AnonymizeParameters)


class DirectoryTaskCreate(BaseModel):
    """Every photo and video below `input_directory`, written to the same relative paths below
    `output_directory`."""

    model_config = ConfigDict(extra="forbid")

    input_directory: DirectoryInput
    output_directory: FileSpec
    overwrite: Flag = Field(
        default=False,
        description="Replace files in the output directory that the task writes; without it a task that "
        "would replace any is refused (422).",
    )
    parameters: AnonymizeParameters = Field(default_factory=AnonymizeParameters)


class TaskCreated(BaseModel):
    task_id: str


class DirectoryInputEcho(FileSpec):
    auto_delete: FlagText = "False"


class FileInputEcho(DirectoryInputEcho):
    expires_at: datetime | None = None


class MediaCounts(BaseModel):
    IMAGE: int = 0
    VIDEO: int = 0


class FileFailure(BaseModel):
    path: str = Field(description="Relative to the key's file root.")
    reason: str


class BlurItResult(BaseModel):
    """The request's specs, as accepted, and what was processed: bytes (`size`) and files (`nb_files`)."""

    input_directory: DirectoryInputEcho | None = None
    output_directory: FileSpec | None = None
    size: MediaCounts = Field(default_factory=MediaCounts)
    nb_files: MediaCounts = Field(default_factory=MediaCounts)
    input_video: FileInputEcho | None = None
    input_image: FileInputEcho | None = None
    output_video: OutputSpec | None = None
    output_image: OutputSpec | None = None
    output_json: OutputSpec | None = None


class BlurItTask(BaseModel):
    task_id: str
    status: TaskStatus
    result: BlurItResult
    error: TaskError | None = Field(default=None, description="Why the task failed; null otherwise.")
    failures: list[FileFailure] | None = Field(
        default=None,
        description="Directory tasks: the files that could not be processed or were skipped (symbolic "
        "links, special files), and why.",
    )


class _Errors:
    """Field errors gathered across a request, so one answer names every offending field."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            raise InvalidInputError(self.fields)


@dataclass(frozen=True)
class _Place:
    """A path below the key's root as checked: its one spelling, and what is there (None: nothing)."""

    parts: tuple[str, ...]
    info: os.stat_result | None

    def holds(self, kind: int) -> bool:
        return self.info is not None and stat.S_IFMT(self.info.st_mode) == kind


def _look(root: FileRoot, field: str, spec: FileSpec, errors: _Errors) -> _Place | None:
    """Where `spec` points below the key's root, or None after noting why its path is refused."""
    try:
        return _Place(path_parts(spec.path), root.lstat(spec.path))
    except PathOutsideRootError as exc:
        errors.add(f"{field}.path", str(exc))
    except NotADirectoryError:
        errors.add(f"{field}.path", "a directory on the way is a file")
    except OSError as exc:
        errors.add(f"{field}.path", f"cannot be reached: {exc.strerror or exc}")
    return None


def _not_a(place: _Place, what: str) -> str:
    """Why `place` is not the `what` ("file", "directory") asked for."""
    if place.holds(stat.S_IFLNK):
        return f"is a symbolic link; {NOT_FOLLOWED}"
    if place.info is None:
        return f"no such {what} under the file root"
    return f"is not a {what}"


def _check_output(
    field: str, output: _Place | None, inputs: set[tuple[int, int]], overwrite: bool, errors: _Errors
) -> None:
    if output is None:
        return
    try:
        check_replaceable(output.info, replace=overwrite, inputs=inputs)
    except OutputRefusedError as exc:
        errors.add(f"{field}.path", str(exc))


def _store(session: Session, owner: ApiKey, request: FileTaskCreate | DirectoryTaskCreate) -> Task:
    task = Task(
        owner_id=owner.id,
        api="blurit",
        operation="anonymize",
        input=request.model_dump(mode="json", exclude={"parameters"}, exclude_none=True),
        parameters=request.parameters.model_dump(mode="json"),
        queue=route(_media_of(request), request.parameters.device),
    )
    session.add(task)
    session.commit()
    return task


def _media_of(request: FileTaskCreate | DirectoryTaskCreate) -> MediaKind:
    """A directory may hold videos: it goes to the video queue, whose workers take long tasks."""
    return "photo" if isinstance(request, FileTaskCreate) and request.input_image else "video"


def create_file_task(
    session: Session, *, owner: ApiKey, request: FileTaskCreate, file_root: Path, s3: S3Files | None = None
) -> Task:
    """Checks a file task's specs against `owner`'s file root (`file_root` is the server's), or with
    protocol "s3" against its prefix in `s3` (`veil.core.services.blurit_s3`), and stores it as a queued
    task; the caller enqueues it.

    Raises:
        InvalidInputError: naming each offending field (`input_image.path`, `output_video`, ...).
    """
    inputs: dict[str, FileInput] = {
        name: spec for name in ("input_image", "input_video") if (spec := getattr(request, name))
    }
    if len(inputs) != 1:
        message = "give exactly one of input_image and input_video"
        raise InvalidInputError({"input_image": [message], "input_video": [message]})
    [(input_field, input_spec)] = inputs.items()
    kind = input_field.removeprefix("input_")
    other = "video" if kind == "image" else "image"
    errors = _Errors()
    if getattr(request, f"output_{other}") is not None:
        errors.add(f"output_{other}", f"{input_field} gives output_{kind} or output_json, not output_{other}")
    outputs: dict[str, OutputSpec] = {
        name: spec for name in (f"output_{kind}", "output_json") if (spec := getattr(request, name))
    }
    if not outputs:
        errors.add(f"output_{kind}", f"give output_{kind}, output_json or both")
    if input_spec.expires_at is not None and input_spec.expires_at <= utc_now():
        errors.add(f"{input_field}.expires_at", "is in the past")
    if _protocol(request) == "s3":
        errors.raise_if_any()
        check_s3_file_task(request, owner=owner, files=s3)
        return _store(session, owner, request)
    root = key_file_root(owner, file_root)
    source = _look(root, input_field, input_spec, errors)
    if source is not None and not source.holds(stat.S_IFREG):
        errors.add(f"{input_field}.path", _not_a(source, "file"))
    input_ids = {file_id(source.info)} if source is not None and source.info is not None else set()
    targets = {name: _look(root, name, spec, errors) for name, spec in outputs.items()}
    for name, target in targets.items():
        _check_output(name, target, input_ids, request.overwrite, errors)
    spellings = [target.parts for target in targets.values() if target is not None]
    if len(spellings) == 2 and spellings[0] == spellings[1]:
        errors.add("output_json.path", f"is the same file as output_{kind}")
    errors.raise_if_any()
    return _store(session, owner, request)


def _protocol(request: FileTaskCreate | DirectoryTaskCreate) -> str:
    """The protocol all the request's specs use.

    Raises:
        InvalidInputError: they use different ones.
    """
    specs = {
        name: spec
        for name in type(request).model_fields
        if isinstance(spec := getattr(request, name), FileSpec)
    }
    protocols = {spec.protocol for spec in specs.values()}
    if len(protocols) > 1:
        message = "give every input and output of a task the same protocol"
        raise InvalidInputError({f"{name}.protocol": [message] for name in specs})
    return protocols.pop()


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def create_directory_task(
    session: Session,
    *,
    owner: ApiKey,
    request: DirectoryTaskCreate,
    file_root: Path,
    s3: S3Files | None = None,
) -> Task:
    """Checks a directory task's specs against `owner`'s file root (`file_root` is the server's), or with
    protocol "s3" against its prefix in `s3` (`veil.core.services.blurit_s3`), and stores it as a queued
    task; the caller enqueues it.

    The output may not overlap the input either way: outputs inside the input would be processed again,
    and an input inside the output could be overwritten by an output with the same relative path. Files the
    task would write that exist already are refused unless `overwrite`; inputs, never.

    Raises:
        InvalidInputError: naming each offending field (`input_directory.path`, ...).
    """
    if _protocol(request) == "s3":
        check_s3_directory_task(request, owner=owner, files=s3)
        return _store(session, owner, request)
    root = key_file_root(owner, file_root)
    errors = _Errors()
    source = _look(root, "input_directory", request.input_directory, errors)
    if source is not None and not source.holds(stat.S_IFDIR):
        errors.add("input_directory.path", _not_a(source, "directory"))
    target = _look(root, "output_directory", request.output_directory, errors)
    if target is not None and source is not None and _overlap(source.parts, target.parts):
        errors.add("output_directory.path", "overlaps the input directory; give a separate directory")
    elif target is not None and target.info is not None and not target.holds(stat.S_IFDIR):
        errors.add("output_directory.path", _not_a(target, "directory"))
    errors.raise_if_any()
    if target is not None and target.info is not None:
        for message in _replaced_files(root, request):
            errors.add("output_directory.path", message)
        errors.raise_if_any()
    return _store(session, owner, request)


def _replaced_files(root: FileRoot, request: DirectoryTaskCreate) -> list[str]:
    """Why the files a directory task would write may not be written where they are: one message per
    reason, naming the first few outputs (relative to the output directory)."""
    try:
        inputs = [entry for entry in root.walk(request.input_directory.path) if entry.skipped is None]
        existing = {entry.relative: entry for entry in root.walk(request.output_directory.path)}
    except (PathOutsideRootError, OSError):
        return []  # changed meanwhile; the worker looks again, file by file
    input_ids = {file_id(entry.info) for entry in inputs}
    refused: dict[str, list[str]] = {}
    for entry in inputs:
        if media_kind(Path(entry.relative)) is None:
            continue  # not processed, so nothing is written for it
        for output in (entry.relative, f"{entry.relative}.json"):
            reason = _refusal(output, existing, input_ids, request.overwrite)
            if reason is not None:
                refused.setdefault(reason, []).append(output)
    return [f"{_some(outputs)}: {reason}" for reason, outputs in refused.items()]


def _refusal(
    output: str, existing: dict[str, Entry], input_ids: set[tuple[int, int]], overwrite: bool
) -> str | None:
    # The walk lists no directories, so an entry on the way to `output` is a link or a file.
    for parent in reversed(PurePosixPath(output).parents[:-1]):
        if (blocking := existing.get(parent.as_posix())) is not None:
            return f"{parent.as_posix()!r} {blocking.skipped or 'is a file, not a directory'}"
    found = existing.get(output)
    try:
        check_replaceable(None if found is None else found.info, replace=overwrite, inputs=input_ids)
    except OutputRefusedError as exc:
        return str(exc)
    return None


def _some(names: list[str], shown: int = 3) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def get_blurit_task(session: Session, *, owner: ApiKey, task_id: str) -> BlurItTask:
    """The task as the BlurIt API shows it: the accepted specs, counts so far, and the error if it failed.

    Raises:
        NotFoundError: no BlurIt task with this id, or it belongs to another key (admins see all).
    """
    query = select(Task).where(Task.id == task_id, Task.api == "blurit")
    if not owner.is_admin:
        query = query.where(Task.owner_id == owner.id)
    task = session.scalar(query)
    if task is None:
        raise NotFoundError("Task", task_id)
    counts = task.result or {}
    result = BlurItResult.model_validate(
        {
            **task.input,
            "size": counts.get("size", {}),
            "nb_files": counts.get("nb_files", {}),
        }
    )
    error = task.error if task.status == "failed" else None
    return BlurItTask.model_validate(
        {
            "task_id": task.id,
            "status": task.status,
            "result": result,
            "error": error,
            "failures": counts.get("failures"),
        }
    )
