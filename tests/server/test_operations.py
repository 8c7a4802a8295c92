"""`GET /v1/operations`: every operation's parameters as JSON Schema, without a key."""

from __future__ import annotations

import io
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import noise_image
from veil.core.parameters import OPERATIONS, STYLE_OPTIONS


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(32, 24)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_operation_has_its_parameter_schema_with_defaults(client: TestClient) -> None:
    response = client.get("/v1/operations")

    assert response.status_code == 200, response.text
    schemas = response.json()
    assert set(schemas) == set(OPERATIONS)
    anonymize = schemas["anonymize"]
    assert anonymize["properties"]["detectors"]["default"] == ["face", "plate"]
    assert anonymize["properties"]["keep_audio"]["default"] is True
    assert anonymize["additionalProperties"] is False
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_a_schema_accepts_what_the_server_accepts(client: TestClient) -> None:
    schema = client.get("/v1/operations").json()["detect"]

    jsonschema.validate({"detectors": ["face"], "threshold": 0.5}, schema)
    try:
        jsonschema.validate({"detectors": ["cat"]}, schema)
    except jsonschema.ValidationError:
        pass
    else:
        raise AssertionError("an unknown detector passed the schema")


@pytest.mark.parametrize(
    ("parameters", "field", "hint"),
    [
        ({"styles": {"face": {"strength": 1.0}}}, "parameters.styles.face.strength", "'blur_strength'"),
        ({"styles": {"plate": {"blocks": 12}}}, "parameters.styles.plate.blocks", "'pixel_blocks'"),
        ({"styles": {"face": {"colour": "#000000"}}}, "parameters.styles.face.colour", "'color'"),
        ({"styles": {"face": {"mask-scale": 2}}}, "parameters.styles.face.mask-scale", "'mask_scale'"),
        ({"detector": ["face"]}, "parameters.detector", "'detectors'"),
        ({"keep_audi": False}, "parameters.keep_audi", "'keep_audio'"),
        # A style option one level too high, as `veil blur --blur-strength` sets it for every label.
        ({"blur_strength": 1.0}, "parameters.blur_strength", "'styles.face.blur_strength'"),
        ({"strength": 1.0}, "parameters.strength", "'styles.face.blur_strength'"),
        ({"method": "fill"}, "parameters.method", "'styles.face.method'"),
    ],
)
def test_a_wrong_parameter_name_is_refused_with_the_right_one(
    client: TestClient, alice: dict[str, str], parameters: dict[str, Any], field: str, hint: str
) -> None:
    """GIVEN a field named as the CLI once did, misspelt or in another form, WHEN a task is submitted
    with it, THEN the 422 names the field and says which name was meant."""
    uploaded = client.post("/v1/files", headers=alice, files={"file": ("a.png", png_bytes(), "image/png")})
    body = {"operation": "anonymize", "input": uploaded.json()["id"], "parameters": parameters}

    refused = client.post("/v1/tasks", headers=alice, json=body)

    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert list(errors) == [field]
    assert errors[field] == [f"unknown field {field.rsplit('.', 1)[1]!r}; did you mean {hint}?"]


def test_an_unknown_parameter_without_a_close_name_lists_the_known_ones(
    client: TestClient, alice: dict[str, str]
) -> None:
    uploaded = client.post("/v1/files", headers=alice, files={"file": ("a.png", png_bytes(), "image/png")})
    parameters = {"styles": {"face": {"speed": 3}}}
    body = {"operation": "anonymize", "input": uploaded.json()["id"], "parameters": parameters}

    refused = client.post("/v1/tasks", headers=alice, json=body)

    assert refused.json()["errors"] == {
        "parameters.styles.face.speed": [f"unknown field 'speed'; the fields are {', '.join(STYLE_OPTIONS)}"]
    }


def test_style_options_have_one_name_everywhere() -> None:
    """The API's style fields (STYLE_OPTIONS) are the names the CLI's flags and the README use."""
    assert STYLE_OPTIONS == (
        "method", "shape", "mask_scale", "blur_strength", "pixel_blocks", "color", "soft_edge"
    )  # fmt: skip
