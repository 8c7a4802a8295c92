from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import save_image
from veil.cli.app import app
from veil.cli.styles import StyleSpecError, build_styles, parse_color
from veil.engine.detections import Detections
from veil.engine.redactors.style import ObscureStyle

runner = CliRunner()


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
    styles = build_styles({"method": "pixelate", "pixel_blocks": "12"}, ["plate:method=fill,color=#ffffff"])
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
        ({}, ["face:speed=3"], "unknown style option 'speed'; the options are method, shape, mask_scale"),
        ({}, ["face:shape=circle"], "ellipse or rectangle"),
        ({}, ["face:method"], "not KEY=VALUE"),
    ],
)
def test_bad_specs_say_why(common: dict[str, str], specs: list[str], message: str) -> None:
    with pytest.raises(StyleSpecError, match=message):
        build_styles(common, specs)


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("strength", "blur_strength"),
        ("blocks", "pixel_blocks"),
        ("color_bgr", "color"),
        ("colour", "color"),
        ("blur-strength", "blur_strength"),
        ("mask-scale", "mask_scale"),
        ("softedge", "soft_edge"),
    ],
)
def test_a_wrong_option_name_says_which_was_meant(key: str, meant: str) -> None:
    with pytest.raises(StyleSpecError, match=f"unknown style option '{key}'; did you mean '{meant}'\\?"):
        build_styles({}, [f"face:{key}=1"])


def test_every_api_style_option_is_a_style_key() -> None:
    """The CLI takes the API's names (STYLE_OPTIONS), each one setting the engine style."""
    styles = build_styles(
        {},
        [
            "face:method=fill,shape=rectangle,mask_scale=1.5,blur_strength=1,pixel_blocks=4,color=#010203,soft_edge=0"
        ],
    )
    assert styles.for_label("face") == ObscureStyle(
        method="fill", shape="rectangle", mask_scale=1.5, blur_strength=1.0, pixel_blocks=4,
        color_bgr=(3, 2, 1), soft_edge=0.0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "hint"),
    [
        (["--style", "plate:strength=3"], "did you mean 'blur_strength'?"),
        (["--strength", "3"], "--blur-strength"),
        (["--blocks", "6"], "--pixel-blocks"),
    ],
)
def test_veil_blur_answers_an_old_option_name_with_the_new_one(
    tmp_path: Path, arguments: list[str], hint: str
) -> None:
    command = ["blur", str(tmp_path), "-o", str(tmp_path / "out"), *arguments]
    result = runner.invoke(app, command, env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert hint in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("label", "hint"),
    [
        ("fase", "did you mean 'face'?"),
        ("Plate", "did you mean 'plate'?"),
        ("logo", "the labels are face, plate"),
    ],
)
def test_a_style_for_a_label_no_detector_finds_is_refused(
    tmp_path: Path, one_face: Detections, label: str, hint: str
) -> None:
    """GIVEN `--style` for a label that no detector finds (a typo would otherwise obscure nothing)
    WHEN `veil blur` runs
    THEN it stops before writing anything, naming the label and the one meant."""
    save_image(tmp_path / "in" / "a.png")
    command = ["blur", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--style", f"{label}:method=fill"]
    result = runner.invoke(app, command, env={"COLUMNS": "200"})

    assert result.exit_code == 2
    assert f"no detector finds the label '{label}'; {hint}" in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_style_for_a_default_label_is_kept_when_its_detector_is_not_run(
    tmp_path: Path, one_face: Detections
) -> None:
    save_image(tmp_path / "in" / "a.png")
    command = ["blur", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--style", "plate:method=fill"]

    assert runner.invoke(app, command).exit_code == 0
