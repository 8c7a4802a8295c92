"""The parameters a client may give an operation, validated by the server and turned into engine options
by the worker. Defaults here are the engine's defaults, so the API documents them."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "DEFAULT_STYLE_PARAMETERS",
    "MAX_RENDER_BOXES",
    "OPERATIONS",
    "STYLE_OPTIONS",
    "AnonymizeParameters",
    "DetectParameters",
    "DetectionsDocument",
    "DocumentBox",
    "DocumentFrame",
    "DocumentMedia",
    "DocumentTally",
    "Label",
    "OutputParameters",
    "RenderParameters",
    "StyleParameters",
    "closest_name",
]

Label = Literal["face", "plate"]
Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]

MAX_RENDER_BOXES = 250_000
"""The most boxes one `render` document may list, all frames together: about 30 MB of JSON. An hour of 30 fps
video with two faces in every frame fits. Such a document is uploaded as a file and read a frame at a time
(`veil.core.services.documents`); tasks carry only its file id and a summary."""
_MAX_BOXES_PER_FRAME = 10_000


def closest_name(name: str, known: Iterable[str]) -> str | None:
    """The known name that a mistyped or outdated `name` most likely means, or None: the same name but for
    case and dashes, one that contains it as a word or is a word of it (strength: blur_strength, color_bgr:
    color), or else the closest spelling."""
    wanted = name.strip().lower().replace("-", "_").replace(" ", "_")
    names = list(known)
    if wanted in names:
        return wanted
    words = set(wanted.split("_"))
    related = [known_name for known_name in names if wanted in known_name.split("_") or known_name in words]
    if len(related) == 1:
        return related[0]
    close = difflib.get_close_matches(wanted, names, n=1, cutoff=0.7)
    return close[0] if close else None


def _unknown_field_message(name: str, known: Iterable[str], nested: tuple[str, Iterable[str]]) -> str:
    hint = closest_name(name, known)
    prefix, nested_names = nested
    nested_hint = closest_name(name, nested_names) if hint is None else None
    if nested_hint is not None:
        hint = f"{prefix}.{nested_hint}"
    if hint is not None:
        return f"unknown field {name!r}; did you mean {hint!r}?"
    return f"unknown field {name!r}; the fields are {', '.join(known)}"


class _Strict(BaseModel):
    """Frozen, and refusing unknown fields with a hint: "unknown field 'strength'; did you mean
    'blur_strength'?" in place of pydantic's "Extra inputs are not permitted"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # The fields of a nested model that a client may write one level too high, and where they belong.
    _nested_fields: ClassVar[tuple[str, tuple[str, ...]]] = ("", ())

    @model_validator(mode="wrap")
    @classmethod
    def _hint_unknown_fields(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            if not any(_own_extra(error) for error in errors):
                raise
            known = [field.alias or name for name, field in cls.model_fields.items()]
            details = [
                _hinted(error, known, cls._nested_fields) if _own_extra(error) else _kept(error)
                for error in errors
            ]
            raise ValidationError.from_exception_data(exc.title, details) from None


def _own_extra(error: Any) -> bool:
    """An unknown field of the model being validated itself (a nested model hints its own)."""
    return error["type"] == "extra_forbidden" and len(error["loc"]) == 1


def _hinted(error: Any, known: list[str], nested: tuple[str, tuple[str, ...]]) -> InitErrorDetails:
    message = _unknown_field_message(str(error["loc"][0]), known, nested)
    return InitErrorDetails(
        type=PydanticCustomError("extra_forbidden", message), loc=error["loc"], input=error["input"]
    )


def _kept(error: Any) -> InitErrorDetails:
    """Another error as it was: its type, place and message."""
    return InitErrorDetails(
        type=PydanticCustomError(error["type"], error["msg"]), loc=error["loc"], input=error["input"]
    )


class StyleParameters(_Strict):
    """How one label is obscured; a field left out keeps the engine's default for that label."""

    method: Literal["blur", "pixelate", "fill"] | None = None
    shape: Literal["ellipse", "rectangle"] | None = None
    mask_scale: Annotated[float, Field(ge=1.0, le=3.0)] | None = Field(
        default=None, description="The mask covers the box grown by this factor (1.0 = the box)."
    )
    blur_strength: Annotated[float, Field(gt=0.0, le=2.0)] | None = Field(
        default=None, description="Gaussian sigma as a fraction of the box's shorter side."
    )
    pixel_blocks: Annotated[int, Field(ge=2, le=64)] | None = Field(
        default=None, description="Blocks across the box's shorter side when pixelating."
    )
    color: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] | None = Field(
        default=None, description="Fill colour as #rrggbb."
    )
    soft_edge: Annotated[float, Field(ge=0.0, le=0.5)] | None = None


STYLE_OPTIONS: tuple[str, ...] = tuple(StyleParameters.model_fields)
"""The name of each style option, the same wherever a person writes one: the API's `styles`, `veil blur`'s
flags and `--style` keys, the manager and the README."""


class DetectParameters(_Strict):
    """What to look for. Boxes are reported in `veil.detections/1` JSON."""

    detectors: list[Label] = Field(default=["face", "plate"], min_length=1)
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        default=None, description="Score threshold for every detector; default: each detector's own."
    )
    detect_every: Annotated[int, Field(ge=1, le=300)] | None = Field(
        default=None, description="Video: detect on every N-th frame and track between; default about 0.3 s."
    )
    device: Literal["any", "gpu"] = Field(
        default="any",
        description='"gpu" queues the task for the GPU workers (`veil worker --queues gpu`); "any" for '
        "whichever worker takes photos or videos.",
    )

    @field_validator("detectors")
    @classmethod
    def _unique(cls, value: list[Label]) -> list[Label]:
        return list(dict.fromkeys(value))


# The engine's default style per label (veil.engine.redactors.style.DEFAULT_STYLES; a test keeps them equal),
# stated here so that the API documents them and the manager's form shows them.
DEFAULT_STYLE_PARAMETERS: dict[Label, StyleParameters] = {
    "face": StyleParameters(method="blur", shape="ellipse", mask_scale=1.3),
    "plate": StyleParameters(method="blur", shape="rectangle", mask_scale=1.15),
}


class OutputParameters(_Strict):
    """How regions are obscured and the output media written (`anonymize` and `render`)."""

    # `veil blur --blur-strength 1` sets it for every label; here it is set per label.
    _nested_fields = ("styles.face", STYLE_OPTIONS)

    styles: dict[Label, StyleParameters] = Field(
        default=DEFAULT_STYLE_PARAMETERS,
        description="Obscuring style per label; a label left out, or a field left out, keeps its default.",
    )
    draw: bool = Field(default=False, description="Outline boxes with label and score instead of obscuring.")
    keep_metadata: bool = Field(default=False, description="Keep photo EXIF/XMP/IPTC except GPS.")
    keep_audio: bool = Field(default=True, description="Copy audio and subtitle streams of videos.")
    codec: Annotated[str, Field(pattern=r"^[a-z0-9_]{2,32}$")] | None = Field(
        default=None, description="FFmpeg video encoder; default libx264 (libvpx-vp9 for WebM)."
    )
    crf: Annotated[int, Field(ge=0, le=63)] | None = None
    preset: Preset | None = None


class AnonymizeParameters(OutputParameters, DetectParameters):
    """What to look for and how to obscure it and write the output."""


class DocumentMedia(_Strict):
    """`media` of a `veil.detections/1` document: the media the boxes were drawn on, displayed orientation."""

    type: Literal["image", "video"]
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    fps: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    frame_count: Annotated[int, Field(ge=0)] | None = None
    duration: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None


class DocumentBox(_Strict):
    """One box to obscure; only `box` is required."""

    label: str = Field(
        default="face",
        min_length=1,
        max_length=16,
        description="Any label; face and plate get their styles, others the default style.",
    )
    score: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    box: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        description="x1, y1, x2, y2 in pixels of the displayed (upright) frame; x2 > x1 and y2 > y1."
    )
    track_id: int | None = Field(default=None, ge=0, le=2**62)
    source: Literal["detected", "tracked"] = "detected"

    @field_validator("box")
    @classmethod
    def _ordered(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = box
        if not (x2 > x1 and y2 > y1):
            raise ValueError("a box is [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        return box


class DocumentFrame(_Strict):
    """Every box to obscure in one frame."""

    index: int = Field(ge=0, description="Frame number from 0; always 0 for a photo.")
    time: FiniteFloat = Field(default=0.0, description="Seconds from the start (informative).")
    detections: list[DocumentBox] = Field(min_length=1, max_length=_MAX_BOXES_PER_FRAME)


class DocumentTally:
    """The frames of one `veil.detections/1` document, checked as they are added one at a time (so a document
    read from a file is never held whole as models) and counted for its summary.

    Checks: each frame index once, only frame 0 for a photo, at most `MAX_RENDER_BOXES` boxes in all.
    """

    def __init__(self, media: DocumentMedia) -> None:
        self.media = media
        self.indices: set[int] = set()
        self.labels: Counter[str] = Counter()

    def add(self, frame: DocumentFrame) -> None:
        """Raises:
        ValueError: the frame breaks one of the document's rules; the message says which.
        """
        if frame.index in self.indices:
            raise ValueError("each frame index may appear once; list every box of a frame in that frame")
        if self.media.type == "image" and frame.index:
            raise ValueError("a photo has only frame 0")
        self.indices.add(frame.index)
        self.labels.update(box.label for box in frame.detections)
        if self.boxes > MAX_RENDER_BOXES:
            raise ValueError(f"{self.boxes} boxes; a document may list at most {MAX_RENDER_BOXES}")

    @property
    def boxes(self) -> int:
        return self.labels.total()

    def summary(self) -> dict[str, Any]:
        """What the document lists, without its boxes: the media's kind and size, how many frames list
        boxes, and boxes in all and per label."""
        return {
            "media": self.media.type,
            "width": self.media.width,
            "height": self.media.height,
            "frames": len(self.indices),
            "boxes": self.boxes,
            "labels": dict(sorted(self.labels.items())),
        }


class DetectionsDocument(_Strict):
    """A `veil.detections/1` document (src/veil/schemas/detections-1.json), as `anonymize` writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_name: Literal["veil.detections/1"] = Field(alias="schema")
    media: DocumentMedia
    frames: list[DocumentFrame] = Field(max_length=MAX_RENDER_BOXES)

    @model_validator(mode="after")
    def _consistent(self) -> DetectionsDocument:
        self.tally()
        return self

    def tally(self) -> DocumentTally:
        """The document's frames checked and counted (see `DocumentTally`)."""
        tally = DocumentTally(self.media)
        for frame in self.frames:
            tally.add(frame)
        return tally


class RenderParameters(OutputParameters):
    """Obscure exactly the boxes of a (corrected) detections document, with no detection. The document is a
    file, named by `detections_file`; a small one may come inline in `detections` instead."""

    detections_file: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^file_[0-9a-z]+$",
        description=(
            "The id of a veil.detections/1 JSON document you uploaded (POST /v1/files): every frame with "
            "a box lists every box to obscure in it."
        ),
    )
    detections: DetectionsDocument | None = Field(
        default=None,
        description=(
            "The document inline instead, for a small one (the request body limit applies). The server "
            "stores it as a file like an upload, and the task names that file in `detections_file`."
        ),
    )

    @model_validator(mode="after")
    def _one_document(self) -> RenderParameters:
        if (self.detections is None) == (self.detections_file is None):
            raise ValueError(
                "give the boxes to obscure as detections_file (the file id of an uploaded veil.detections/1 "
                "document) or inline as detections, one of the two"
            )
        return self


OPERATIONS: dict[str, type[BaseModel]] = {
    "anonymize": AnonymizeParameters,
    "detect": DetectParameters,
    "render": RenderParameters,
}
