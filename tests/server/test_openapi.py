"""Schemathesis drives every operation of /openapi.json with generated requests: no 500, and every answer
matches what the document says (status, content type, body schema, headers)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.orm import sessionmaker

from tests.helpers import RecordingQueue
from tests.server.conftest import make_key
from veil.core.db import create_db_engine, session_scope
from veil.core.models import WorkerBeat
from veil.core.settings import Settings
from veil.server.main import create_app

# Schemathesis reads the document when the module loads, so the app is built here; its lifespan (database,
# storage) runs in the `api_key` fixture.
DATA_DIR = Path(tempfile.mkdtemp(prefix="veil-openapi-"))
APP = create_app(
    Settings(data_dir=DATA_DIR, rate_limit="100000/minute", cleanup_interval_s=3600),
    queue=RecordingQueue(),  # type: ignore[arg-type]
)
# TUS PATCH bodies are raw bytes, sent like application/octet-stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

# The event stream never ends by itself (it runs for an hour), so a generated request would hang the run;
# tests/server/test_events.py reads it instead.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/tasks/events", method="GET")
# TUS answers an unsupported Tus-Resumable version with 412 Precondition Failed (TUS 1.0.0, core protocol):
# a refusal of invalid data, like the 4xx schemathesis expects by default.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "412"]


@pytest.fixture(scope="module")
def api_key() -> Iterator[dict[str, str]]:
    with TestClient(APP):
        sessions = sessionmaker(create_db_engine(APP.state.settings.database_url))
        with session_scope(sessions) as session:
            # A live worker, so /readyz may answer 200; its 503 is documented too.
            session.add(WorkerBeat(name="schemathesis-worker"))
        yield make_key(sessions, "schemathesis")
    shutil.rmtree(DATA_DIR, ignore_errors=True)


@schema.parametrize()
# Derandomized: the same examples on every run, so CI cannot fail on a draw this machine never made.
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case, api_key: dict[str, str]) -> None:
    # positive_data_acceptance expects 2xx for any schema-valid request, but ids that match the schema may
    # still name nothing (404/422) and uploads may hold no photo (415): refusals the document lists.
    case.call_and_validate(headers=api_key, excluded_checks=[positive_data_acceptance])
