"""Turns a task's validated parameters (`veil.core.parameters`) into what the engine is built from."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from veil.core.parameters import OPERATIONS, AnonymizeParameters, Label, StyleParameters
from veil.engine.anonymizer import AnonymizeOptions
from veil.engine.redactors.style import DEFAULT_STYLES, ObscureStyle, StylesByLabel
from veil.engine.video import VideoOptions

__all__ = ["EngineRequest", "InvalidParametersError", "engine_request"]


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
        InvalidParametersError: the operation is unknown or the parameters do not validate (they did when
            the task was created, so the server and this worker disagree on the schema).
    """
    model = OPERATIONS.get(operation)
    if model is None:
        raise InvalidParametersError(f"unknown operation {operation!r}")
    try:
        validated = model.model_validate(dict(parameters))
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidParametersError(f"the parameters of {operation!r} do not validate: {errors}") from exc
    if isinstance(validated, AnonymizeParameters):
        options = _anonymize_options(validated)
    else:
        options = AnonymizeOptions(video=VideoOptions(detect_every=validated.detect_every))
    return EngineRequest(
        detectors=tuple(validated.detectors),
        threshold=validated.threshold,
        options=options,
        write_media=isinstance(validated, AnonymizeParameters),
    )


def _anonymize_options(parameters: AnonymizeParameters) -> AnonymizeOptions:
    defaults = VideoOptions()
    video = VideoOptions(
        codec=parameters.codec or defaults.codec,
        crf=defaults.crf if parameters.crf is None else parameters.crf,
        preset=parameters.preset or defaults.preset,
        keep_audio=parameters.keep_audio,
        detect_every=parameters.detect_every,
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
        per_label[label] = _style(DEFAULT_STYLES.for_label(label), given)
    return StylesByLabel(default=DEFAULT_STYLES.default, per_label=per_label)


def _style(base: ObscureStyle, given: StyleParameters) -> ObscureStyle:
    changes: dict[str, Any] = {
        name: value for name, value in given.model_dump(exclude={"color"}).items() if value is not None
    }
    if given.color is not None:
        red, green, blue = (int(given.color[i : i + 2], 16) for i in (1, 3, 5))
        changes["color_bgr"] = (blue, green, red)
    return dataclasses.replace(base, **changes)
