"""`GET /v1/operations`: every operation's parameters as JSON Schema, without a key."""

from __future__ import annotations

import jsonschema
from fastapi.testclient import TestClient

from veil.core.parameters import OPERATIONS


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
