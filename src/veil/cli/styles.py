"""Turns the command line's style flags into per-label obscuring styles. The options have the API's names
(`STYLE_OPTIONS`: blur_strength, pixel_blocks, ...), as flags (`--blur-strength`) and `--style` keys."""

from __future__ import annotations

import dataclasses
from typing import Any

from veil.core.parameters import STYLE_OPTIONS, closest_name
from veil.engine.redactors.style import DEFAULT_STYLES, ObscureStyle, StylesByLabel

__all__ = ["StyleSpecError", "build_styles", "parse_color"]


class StyleSpecError(ValueError):
    """A style flag cannot be understood; the message says which and why."""


# The ObscureStyle field each option sets: the same name, but for the colour, given as text.
_FIELDS = {option: "color_bgr" if option == "color" else option for option in STYLE_OPTIONS}


def parse_color(text: str) -> tuple[int, int, int]:
    """Parses "#RRGGBB", "RRGGBB" or "R,G,B" into a blue-green-red tuple."""
    value = text.strip().lstrip("#")
    try:
        if "," in value:
            red, green, blue = (int(part) for part in value.split(","))
        elif len(value) == 6:
            red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
        else:
            raise ValueError
    except ValueError as exc:
        raise StyleSpecError(f"colour {text!r}: use #RRGGBB or R,G,B") from exc
    if not all(0 <= c <= 255 for c in (red, green, blue)):
        raise StyleSpecError(f"colour {text!r}: each channel must be 0-255")
    return (blue, green, red)


def _unknown(key: str) -> StyleSpecError:
    hint = closest_name(key, STYLE_OPTIONS)
    if hint is not None:
        return StyleSpecError(f"unknown style option {key!r}; did you mean {hint!r}?")
    return StyleSpecError(f"unknown style option {key!r}; the options are {', '.join(STYLE_OPTIONS)}")


def _convert(key: str, raw: str) -> tuple[str, Any]:
    if key not in _FIELDS:
        raise _unknown(key)
    name = _FIELDS[key]
    if name == "color_bgr":
        return name, parse_color(raw)
    if name == "method" and raw not in ("blur", "pixelate", "fill"):
        raise StyleSpecError(f"method {raw!r}: use blur, pixelate or fill")
    if name == "shape" and raw not in ("ellipse", "rectangle"):
        raise StyleSpecError(f"shape {raw!r}: use ellipse or rectangle")
    kind = int if name == "pixel_blocks" else float if name not in ("method", "shape") else str
    try:
        value = kind(raw)
    except ValueError as exc:
        raise StyleSpecError(f"{key}={raw!r}: expected a number") from exc
    if isinstance(value, (int, float)) and value < 0:
        raise StyleSpecError(f"{key}={raw!r}: must not be negative")
    return name, value


def _apply(style: ObscureStyle, settings: dict[str, str]) -> ObscureStyle:
    changes = dict(_convert(key, raw) for key, raw in settings.items())
    return dataclasses.replace(style, **changes)


def _parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    label, sep, body = spec.partition(":")
    if not sep or not label or not body:
        raise StyleSpecError(f"style {spec!r}: use LABEL:KEY=VALUE[,KEY=VALUE], e.g. plate:method=fill")
    settings: dict[str, str] = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            raise StyleSpecError(f"style {spec!r}: {item!r} is not KEY=VALUE")
        settings[key.strip()] = value.strip()
    return label.strip(), settings


def build_styles(common: dict[str, str], per_label_specs: list[str]) -> StylesByLabel:
    """Applies `common` settings to every label's default style, then each "LABEL:KEY=VALUE,..." spec.

    Raises:
        StyleSpecError: a setting or value is not understood.
    """
    default = _apply(DEFAULT_STYLES.default, common)
    per_label = {label: _apply(style, common) for label, style in DEFAULT_STYLES.per_label.items()}
    for spec in per_label_specs:
        label, settings = _parse_spec(spec)
        per_label[label] = _apply(per_label.get(label, default), settings)
    return StylesByLabel(default=default, per_label=per_label)
