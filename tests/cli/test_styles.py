from __future__ import annotations

import pytest

from veil.cli.styles import StyleSpecError, build_styles, parse_color


@pytest.mark.parametrize(
    ("text", "bgr"),
    [("#ff0000", (0, 0, 255)), ("00ff00", (0, 255, 0)), ("1,2,3", (3, 2, 1))],
)
def test_parse_color(text: str, bgr: tuple[int, int, int]) -> None:
    assert parse_color(text) == bgr


@pytest.mark.parametrize("text", ["#fff", "red", "1,2", "300,0,0"])
def test_parse_color_rejects(text: str) -> None:
    with pytest.raises(StyleSpecError):
        parse_color(text)


def test_common_settings_apply_to_every_label_and_specs_override() -> None:
    styles = build_styles({"method": "pixelate", "blocks": "12"}, ["plate:method=fill,color=#ffffff"])
    assert styles.for_label("face").method == "pixelate"
    assert styles.for_label("face").pixel_blocks == 12
    plate = styles.for_label("plate")
    assert plate.method == "fill" and plate.color_bgr == (255, 255, 255) and plate.pixel_blocks == 12
    assert styles.for_label("tattoo").method == "pixelate"


@pytest.mark.parametrize(
    ("common", "specs", "message"),
    [
        ({"mask_scale": "big"}, [], "expected a number"),
        ({"mask_scale": "-1"}, [], "must not be negative"),
        ({}, ["face:speed=3"], "unknown style setting 'speed'"),
        ({}, ["face:shape=circle"], "ellipse or rectangle"),
        ({}, ["face:method"], "not KEY=VALUE"),
    ],
)
def test_bad_specs_say_why(common: dict[str, str], specs: list[str], message: str) -> None:
    with pytest.raises(StyleSpecError, match=message):
        build_styles(common, specs)
