"""The parameters a client may give an operation, validated by the server and turned into engine options
by the worker. Defaults here are the engine's defaults, so the API documents them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["OPERATIONS", "AnonymizeParameters", "DetectParameters", "Label", "StyleParameters"]

Label = Literal["face", "plate"]
Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class DetectParameters(_Strict):
    """What to look for. Boxes are reported in `veil.detections/1` JSON."""

    detectors: list[Label] = Field(default=["face", "plate"], min_length=1)
    threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        default=None, description="Score threshold for every detector; default: each detector's own."
    )
    detect_every: Annotated[int, Field(ge=1, le=300)] | None = Field(
        default=None, description="Video: detect on every N-th frame and track between; default about 0.3 s."
    )

    @field_validator("detectors")
    @classmethod
    def _unique(cls, value: list[Label]) -> list[Label]:
        return list(dict.fromkeys(value))


class AnonymizeParameters(DetectParameters):
    """What to look for and how to obscure it and write the output."""

    styles: dict[Label, StyleParameters] = Field(default_factory=dict)
    draw: bool = Field(default=False, description="Outline boxes with label and score instead of obscuring.")
    keep_metadata: bool = Field(default=False, description="Keep photo EXIF/XMP/IPTC except GPS.")
    keep_audio: bool = Field(default=True, description="Copy audio and subtitle streams of videos.")
    codec: Annotated[str, Field(pattern=r"^[a-z0-9_]{2,32}$")] | None = Field(
        default=None, description="FFmpeg video encoder; default libx264 (libvpx-vp9 for WebM)."
    )
    crf: Annotated[int, Field(ge=0, le=63)] | None = None
    preset: (
        Literal[
            "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
        ]
        | None
    ) = None


OPERATIONS: dict[str, type[DetectParameters]] = {
    "anonymize": AnonymizeParameters,
    "detect": DetectParameters,
}
