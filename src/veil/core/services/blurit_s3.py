"""BlurIt-style tasks with `protocol: "s3"`: inputs and outputs are objects in a bucket, below the key's own
prefix.

`VEIL_S3_FILES_URL` (s3://bucket/prefix) says where such paths live. A key reaches `<prefix>/<key id>/`
and nothing else (an admin key the whole prefix), as protocol "file" gives each key its own folder. A
spec names the bucket and the object key (`path`; for a directory, a key prefix), in full: hostile
spellings (`..`, `.`, empty segments, a leading `/`) and keys outside the key's prefix are refused with
the field named, before a task exists, and again by the worker. Outputs may not replace an input, nor an
existing object unless the request sets `overwrite`; `lifespan` is refused (a bucket's lifecycle rules
do that job where the objects are).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veil.core.database.models import ApiKey
from veil.core.errors import InvalidInputError
from veil.core.settings import Settings
from veil.core.storage import S3Storage, s3_storage
from veil.core.storage.s3 import S3Location, parse_s3_url
from veil.engine.media.kinds import media_kind

if TYPE_CHECKING:
    from veil.core.services.blurit import DirectoryTaskCreate, FileTaskCreate

__all__ = [
    "S3Files",
    "S3PathRefusedError",
    "check_s3_directory_task",
    "check_s3_file_task",
    "media_below",
    "object_key",
    "s3_files",
]


class S3PathRefusedError(ValueError):
    """An S3 spec names a bucket or key the API key may not reach; the message says why."""


@dataclass(frozen=True)
class S3Files:
    """Where protocol "s3" paths live, and the bucket opened (object keys as given, no prefix added)."""

    location: S3Location
    bucket: S3Storage

    def prefix_of(self, owner_id: str, *, is_admin: bool) -> str:
        """The key prefix API key `owner_id` may reach, ending in "/" ("" for an admin key on a whole
        bucket)."""
        parts = [part for part in (self.location.prefix, None if is_admin else owner_id) if part]
        return "".join(f"{part}/" for part in parts)


def s3_files(settings: Settings) -> S3Files | None:
    """The place `settings.s3_files_url` names, reached with the `s3_*` settings; None when not set."""
    if not settings.s3_files_url:
        return None
    location = parse_s3_url(settings.s3_files_url)
    return S3Files(location, s3_storage(settings, S3Location(location.bucket)))


def object_key(spec: Mapping[str, Any], files: S3Files, prefix: str) -> str:
    """The object key (or key prefix) `spec` names, once checked against the API key's `prefix`.

    Raises:
        S3PathRefusedError: another bucket, a hostile spelling, or a key outside `prefix`.
    """
    bucket, path = str(spec.get("bucket")), str(spec["path"])
    if bucket != files.location.bucket:
        raise S3PathRefusedError(
            f"bucket {bucket!r} is not the one for protocol s3; use {files.location.bucket!r}"
        )
    if any(unicodedata.category(char)[0] == "C" for char in path):
        raise S3PathRefusedError("contains control characters")
    parts = path.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise S3PathRefusedError('give the object key in full, without "..", "." or empty segments')
    key = "/".join(parts)
    if not f"{key}/".startswith(prefix):
        raise S3PathRefusedError(f"is outside your prefix s3://{bucket}/{prefix}")
    return key


class _Errors(dict[str, list[str]]):
    def add(self, field: str, message: str) -> None:
        self.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self:
            raise InvalidInputError(dict(self))


def _keys(specs: Mapping[str, Any], owner: ApiKey, files: S3Files | None, errors: _Errors) -> dict[str, str]:
    """The object key of each spec that names an allowed one; the others are noted in `errors`."""
    if files is None:
        for field in specs:
            errors.add(f"{field}.protocol", 'protocol "s3" is not set up on this server (VEIL_S3_FILES_URL)')
        return {}
    prefix = files.prefix_of(owner.id, is_admin=owner.is_admin)
    keys: dict[str, str] = {}
    for field, spec in specs.items():
        if spec.get("lifespan"):
            errors.add(
                f"{field}.lifespan", 'is not supported with protocol "s3"; give the bucket a lifecycle rule'
            )
        try:
            keys[field] = object_key(spec, files, prefix)
        except S3PathRefusedError as exc:
            errors.add(f"{field}.path", str(exc))
    return keys


def check_s3_file_task(request: FileTaskCreate, *, owner: ApiKey, files: S3Files | None) -> None:
    """Checks a file task whose specs use protocol "s3" (the caller checked the fields' combination).

    Raises:
        InvalidInputError: naming each offending field.
    """
    errors = _Errors()
    specs = _specs(request, ("input_image", "input_video", "output_image", "output_video", "output_json"))
    keys = _keys(specs, owner, files, errors)
    errors.raise_if_any()
    assert files is not None  # _keys noted every field otherwise
    [input_field] = [field for field in keys if field.startswith("input_")]
    if not files.bucket.exists(keys[input_field]):
        errors.add(f"{input_field}.path", "no such object")
    outputs = {field: key for field, key in keys.items() if field.startswith("output_")}
    for field, key in outputs.items():
        if key == keys[input_field]:
            errors.add(f"{field}.path", f"is the input {input_field}; give another key")
        elif not request.overwrite and files.bucket.exists(key):
            errors.add(f"{field}.path", "exists already; set overwrite to replace it")
    if len(set(outputs.values())) < len(outputs):
        errors.add("output_json.path", "is the same object as the media output")
    errors.raise_if_any()


def check_s3_directory_task(request: DirectoryTaskCreate, *, owner: ApiKey, files: S3Files | None) -> None:
    """Checks a directory task whose specs use protocol "s3": the output prefix may not overlap the
    input's, and may hold none of the objects the task would write unless `overwrite`.

    Raises:
        InvalidInputError: naming each offending field.
    """
    errors = _Errors()
    keys = _keys(_specs(request, ("input_directory", "output_directory")), owner, files, errors)
    errors.raise_if_any()
    assert files is not None
    source, target = keys["input_directory"], keys["output_directory"]
    if f"{source}/".startswith(f"{target}/") or f"{target}/".startswith(f"{source}/"):
        errors.add("output_directory.path", "overlaps the input directory; give a separate key prefix")
        errors.raise_if_any()
    inputs = media_below(files, source)
    if not inputs:
        errors.add("input_directory.path", "no photo or video object below this key prefix")
    existing = set(files.bucket.list_keys(target)) if not request.overwrite else set()
    replaced = [
        name
        for relative in inputs
        for name in (relative, f"{relative}.json")
        if f"{target}/{name}" in existing
    ]
    if replaced:
        errors.add(
            "output_directory.path", f"{_some(replaced)}: exist already; set overwrite to replace them"
        )
    errors.raise_if_any()


def media_below(files: S3Files, prefix: str) -> list[str]:
    """The photos and videos below the key prefix (by their names' suffixes), relative to it, in order."""
    relatives = (key.removeprefix(f"{prefix}/") for key in files.bucket.list_keys(prefix))
    return sorted(relative for relative in relatives if media_kind(Path(relative)) is not None)


def _specs(request: FileTaskCreate | DirectoryTaskCreate, fields: Iterable[str]) -> dict[str, Any]:
    return {
        field: spec.model_dump() for field in fields if (spec := getattr(request, field, None)) is not None
    }


def _some(names: list[str], shown: int = 3) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
