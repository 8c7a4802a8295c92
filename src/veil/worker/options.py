"""Turns a task's validated parameters (`veil.core.parameters`) into what the engine is built from:
an `EngineRequest` for the operations that detect, a `Renderer` for `render`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from veil.core.parameters import (
    OPERATIONS,
    AnonymizeParameters,
    DetectParameters,
    DocumentFrame,
    Label,
    OutputParameters,
    RenderParameters,
    StyleParameters,
)
from veil.core.services.documents import DocumentError, read_document
from veil.engine.anonymizer import AnonymizeOptions
from veil.engine.detections import Detections
from veil.engine.redactors.style import DEFAULT_STYLES, ObscureStyle, StylesByLabel
from veil.engine.render import Renderer
from veil.engine.video import VideoOptions

__all__ = ["EngineRequest", "InvalidParametersError", "engine_request", "render_request"]


class InvalidParametersError(ValueError):
    """A task's stored operation or parameters do not validate (any more)."""


@dataclass(frozen=True)
class EngineRequest:
    """What one task asks of the engine.

    Attributes:
        detectors: detector names, in the order given.
        threshold: score threshold for every detector; None keeps each detector's own.
        options: how regions are obscured and media written.
        write_media: False when only detecting (no output media, JSON only).
    """

    detectors: tuple[str, ...]
    threshold: float | None
    options: AnonymizeOptions
    write_media: bool


def engine_request(operation: str, parameters: Mapping[str, Any]) -> EngineRequest:
    """The engine request for `operation` ("anonymize" or "detect") with `parameters` as stored.

    Raises:
        InvalidParametersError: the operation is unknown or runs no detection, or the parameters do not
            validate (they did when the task was created, so the server and this worker disagree on the
            schema).
    """
    validated = _validated(operation, parameters)
    if isinstance(validated, AnonymizeParameters):
        options = _output_options(validated, validated.detect_every)
    elif isinstance(validated, DetectParameters):
        options = AnonymizeOptions(video=VideoOptions(detect_every=validated.detect_every))
    else:
        raise InvalidParametersError(f"operation {operation!r} runs no detectors")
    return EngineRequest(
        detectors=tuple(validated.detectors),
        threshold=validated.threshold,
        options=options,
        write_media=isinstance(validated, AnonymizeParameters),
    )


def render_request(parameters: Mapping[str, Any], document: bytes | None) -> Renderer:
    """The renderer for a `render` task's `parameters` as stored and its document file's bytes (read
    a frame at a time). A task stored before documents were files carries its document inline, and no
    file (`document` None).

    Raises:
        InvalidParametersError: the parameters or the document do not validate, or there is no document.
    """
    validated = _validated("render", parameters)
    assert isinstance(validated, RenderParameters)
    boxes_by_frame: dict[int, Detections] = {}

    def keep(frame: DocumentFrame) -> None:
        boxes_by_frame[frame.index] = _frame_boxes(frame)

    if validated.detections is not None:
        summary = validated.detections.tally().summary()
        for frame in validated.detections.frames:
            keep(frame)
    elif document is None:
        raise InvalidParametersError(f"no render document: file {validated.detections_file} was not read")
    else:
        try:
            summary = read_document(document, keep)
        except DocumentError as exc:
            raise InvalidParametersError(f"the render document does not validate: {exc}") from exc
    return Renderer(
        boxes_by_frame=boxes_by_frame,
        media_type=summary["media"],
        size_wh=(summary["width"], summary["height"]),
        options=_output_options(validated, None),
    )


def _validated(operation: str, parameters: Mapping[str, Any]) -> BaseModel:
    model = OPERATIONS.get(operation)
    if model is None:
        raise InvalidParametersError(f"unknown operation {operation!r}")
    try:
        return model.model_validate(dict(parameters))
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidParametersError(f"the parameters of {operation!r} do not validate: {errors}") from exc


def _frame_boxes(frame: DocumentFrame) -> Detections:
    """One frame's boxes as engine detections (track id -1 where none is given)."""
    boxes = frame.detections
    return Detections(
        np.array([box.box for box in boxes], np.float32),
        np.array([box.score for box in boxes], np.float32),
        np.array([box.label for box in boxes], "<U16"),
        np.array([-1 if box.track_id is None else box.track_id for box in boxes], np.int64),
        np.array([box.source for box in boxes], "<U8"),
    )


def _output_options(parameters: OutputParameters, detect_every: int | None) -> AnonymizeOptions:
    defaults = VideoOptions()
    video = VideoOptions(
        codec=parameters.codec or defaults.codec,
        crf=defaults.crf if parameters.crf is None else parameters.crf,
        preset=parameters.preset or defaults.preset,
        keep_audio=parameters.keep_audio,
        detect_every=detect_every,
        draw=parameters.draw,
    )
    return AnonymizeOptions(
        styles=_styles(parameters.styles),
        draw=parameters.draw,
        keep_metadata=parameters.keep_metadata,
        video=video,
    )


def _styles(overrides: Mapping[Label, StyleParameters]) -> StylesByLabel:
    """The engine's default styles, with each label's given fields replaced."""
    per_label = dict(DEFAULT_STYLES.per_label)
    for label, given in overrides.items():
        base = DEFAULT_STYLES.for_label(label)
        style = _style(base, given)
        if style != base:
            per_label[label] = style
    return StylesByLabel(default=DEFAULT_STYLES.default, per_label=per_label)


def _style(base: ObscureStyle, given: StyleParameters) -> ObscureStyle:
    changes: dict[str, Any] = {
        name: value for name, value in given.model_dump(exclude={"color"}).items() if value is not None
    }
    if given.color is not None:
        red, green, blue = (int(given.color[i : i + 2], 16) for i in (1, 3, 5))
        changes["color_bgr"] = (blue, green, red)
    return dataclasses.replace(base, **changes)
