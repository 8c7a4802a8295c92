"""Task parameters become the engine's options: defaults stay the engine's, given fields replace them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from veil.core.parameters import DEFAULT_STYLE_PARAMETERS
from veil.engine.anonymizer import AnonymizeOptions
from veil.engine.redactors.style import DEFAULT_STYLES, ObscureStyle
from veil.engine.video import VideoOptions
from veil.worker.options import EngineRequest, InvalidParametersError, engine_request


def test_defaults_are_the_engines() -> None:
    request = engine_request("anonymize", {})
    assert request == EngineRequest(
        detectors=("face", "plate"), threshold=None, options=AnonymizeOptions(), write_media=True
    )


def test_the_documented_default_styles_are_the_engines() -> None:
    """The API states each label's default style (DEFAULT_STYLE_PARAMETERS) so clients can show it; it must
    be what the engine does with no styles given."""
    options = engine_request("anonymize", {"styles": {}}).options
    for label, documented in DEFAULT_STYLE_PARAMETERS.items():
        converted = engine_request("anonymize", {"styles": {label: documented.model_dump()}}).options
        assert (
            converted.styles.for_label(label)
            == DEFAULT_STYLES.for_label(label)
            == options.styles.for_label(label)
        )


@pytest.mark.parametrize(
    ("parameters", "expected_video"),
    [
        ({"detect_every": 3}, VideoOptions(detect_every=3)),
        ({"keep_audio": False, "crf": 0}, VideoOptions(keep_audio=False, crf=0)),
        ({"codec": "libx265", "preset": "slow"}, VideoOptions(codec="libx265", preset="slow")),
        ({"draw": True}, VideoOptions(draw=True)),
    ],
)
def test_video_parameters(parameters: dict[str, Any], expected_video: VideoOptions) -> None:
    assert engine_request("anonymize", parameters).options.video == expected_video


def test_styles_replace_only_the_given_fields_of_each_label() -> None:
    request = engine_request(
        "anonymize",
        {
            "styles": {
                "face": {"method": "fill", "color": "#ff8000"},
                "plate": {"mask_scale": 2.0, "soft_edge": 0.0},
            }
        },
    )
    styles = request.options.styles
    assert styles.for_label("face") == ObscureStyle(method="fill", color_bgr=(0, 128, 255))
    assert styles.for_label("plate") == replace(
        DEFAULT_STYLES.for_label("plate"), mask_scale=2.0, soft_edge=0.0
    )
    assert styles.default == DEFAULT_STYLES.default


def test_detect_writes_no_media_and_keeps_detection_settings() -> None:
    request = engine_request("detect", {"detectors": ["plate"], "threshold": 0.4, "detect_every": 5})
    assert request.write_media is False
    assert request.detectors == ("plate",)
    assert request.threshold == 0.4
    assert request.options == AnonymizeOptions(video=VideoOptions(detect_every=5))


def test_metadata_and_drawing_flags() -> None:
    options = engine_request("anonymize", {"keep_metadata": True, "draw": True}).options
    assert options.keep_metadata is True
    assert options.draw is True


@pytest.mark.parametrize(
    ("operation", "parameters", "message"),
    [
        ("resize", {}, "unknown operation 'resize'"),
        ("anonymize", {"threshold": 2}, "threshold"),
        ("detect", {"styles": {}}, "styles: unknown field 'styles'; the fields are detectors, threshold"),
    ],
)
def test_invalid_parameters_are_refused_with_the_field(
    operation: str, parameters: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParametersError, match=message):
        engine_request(operation, parameters)
