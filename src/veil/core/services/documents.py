"""Render documents (`veil.detections/1` JSON) kept as files: read and checked a frame at a time.

A document may list 250,000 boxes (about 30 MB). Made whole into pydantic models, one of 216,000 boxes takes
about 680 MiB; read here, its parsed JSON and one frame of models at a time, about 180 MiB (BENCHMARKS.md,
`bench/render_document.py`). The server reads an uploaded document once, to refuse a bad one and record its
summary in the file's properties; the worker reads it again to render. Task views carry the summary, never
the boxes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from veil.core.parameters import MAX_RENDER_BOXES, DocumentFrame, DocumentMedia, DocumentTally

__all__ = ["DOCUMENT_TYPE", "MAX_DOCUMENT_BYTES", "DocumentError", "read_document"]

DOCUMENT_TYPE = "application/json"
MAX_DOCUMENT_BYTES = 32 * 1024**2
"""The largest document file accepted: room for `MAX_RENDER_BOXES` boxes as `anonymize` writes them."""

_Model = TypeVar("_Model", bound=BaseModel)


class DocumentError(ValueError):
    """The content is not a valid `veil.detections/1` document. `errors` maps places in it (such as
    `frames.3.detections.0.box`; `document` for the whole) to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        listed = (f"{place}: {message}" for place, messages in errors.items() for message in messages)
        super().__init__("; ".join(listed))


class _Head(BaseModel):
    """The document but its frames, which are checked one at a time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_name: Literal["veil.detections/1"] = Field(alias="schema")
    media: DocumentMedia
    frames: list[Any] = Field(max_length=MAX_RENDER_BOXES)


def read_document(data: bytes, visit: Callable[[DocumentFrame], None] | None = None) -> dict[str, Any]:
    """Checks a document's JSON a frame at a time, handing each valid frame to `visit`, and returns its
    summary (`DocumentTally.summary`).

    Raises:
        DocumentError: the data is not JSON, or not a valid document; checking stops at the first bad frame.
    """
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:  # also too deep a nesting, or an integer of 5,000 digits
        raise DocumentError({"document": [f"not JSON text ({exc})"]}) from exc
    head = _checked(_Head, parsed, "")
    tally = DocumentTally(head.media)
    for position, raw in enumerate(head.frames):
        frame = _checked(DocumentFrame, raw, f"frames.{position}.")
        try:
            tally.add(frame)
        except ValueError as exc:
            raise DocumentError({f"frames.{position}": [str(exc)]}) from exc
        if visit is not None:
            visit(frame)
    return tally.summary()


def _checked(model: type[_Model], raw: Any, place: str) -> _Model:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            field = place + ".".join(str(part) for part in error["loc"])
            errors.setdefault(field.rstrip(".") or "document", []).append(error["msg"])
        raise DocumentError(errors) from exc
