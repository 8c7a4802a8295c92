"""Schemathesis drives every operation of /openapi.json with generated requests, valid and invalid: no 500,
and every answer matches what the document says (status, content type, body schema, headers).

Schemathesis draws from the schemas, so some inputs a hostile client sends are out of its reach: a JSON
Logic `filter` is a plain string to it, its strings never hold a lone surrogate (it cannot send one as
UTF-8, but JSON's "\\ud800" escape can), and it keeps bodies well-formed. So a share of the cases is made
hostile on top: a JSON Logic filter built from numbers beyond 64 bits, lone surrogates, odd types and unknown
names; a lone surrogate, a huge number, a truncated document or padding past the size limit in a JSON body;
an unusable Content-Length. Those must be refused as a problem (4xx, application/problem+json) whose
`errors` name fields, never byte offsets: the review that found each of these as a 500 would find them here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from tests.server.conftest import make_key
from veil.core.database.connection import create_db_engine, session_scope
from veil.core.database.models import WorkerBeat, utc_now
from veil.core.settings import Settings
from veil.server.main import create_app

MAX_JSON_BYTES = 16 * 1024  # small, so that a body past it is cheap to send

# Schemathesis reads the document when the module loads, so the app is built here; its lifespan (database,
# storage) runs in the `api_key` fixture.
DATA_DIR = Path(tempfile.mkdtemp(prefix="veil-openapi-"))
APP = create_app(
    Settings(
        data_dir=DATA_DIR, rate_limit="100000/minute", cleanup_interval_s=3600, max_json_bytes=MAX_JSON_BYTES
    ),
    queue=RecordingQueue(),  # type: ignore[arg-type]
)
# TUS PATCH bodies are raw bytes, sent like application/octet-stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

# The event stream never ends by itself (it runs for an hour), so a generated request would hang the run;
# tests/server/test_events.py reads it instead.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/tasks/events", method="GET")
# TUS answers an unsupported Tus-Resumable version with 412 Precondition Failed (TUS 1.0.0, core protocol),
# and a JSON body past the limit gets 413: refusals of invalid data, like the 4xx schemathesis expects.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "412", "413"]
# The same operations for the hostile cases: only generated ones (fuzzing), since schema examples cannot
# carry the extra draw.
hostile_schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(
    path="/v1/tasks/events", method="GET"
)
hostile_schema.config.phases.examples.enabled = False
hostile_schema.config.phases.coverage.enabled = False

LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\udbff"])
HUGE_NUMBERS = st.sampled_from([2**63, -(2**63) - 1, 2**64 + 1, 10**30, -(10**40)])
EDGE_TIMES = st.sampled_from(["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00", "2025-01-31"])
COMPARISONS = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
# Each field with the values of its type that a database cannot bind, and some that it can.
FIELD_VALUES = [
    (st.sampled_from(["progress", "size"]), st.one_of(HUGE_NUMBERS, st.integers(), st.floats())),
    (st.sampled_from(["id", "status", "operation", "name"]), st.one_of(LONE_SURROGATES, st.text(max_size=8))),
    (st.sampled_from(["created_at", "updated_at"]), st.one_of(EDGE_TIMES, LONE_SURROGATES)),
]


def _comparison(fields: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def rule(operator: str, name: str, value: Any, flip: bool) -> Any:
        operands = [value, {"var": name}] if flip else [{"var": name}, value]
        return {operator: operands}

    return st.builds(rule, COMPARISONS, fields, values, st.booleans())


def _membership(fields: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(
        lambda name, listed: {"in": [{"var": name}, listed]}, fields, st.lists(values, max_size=4)
    )


def _filter_rules() -> st.SearchStrategy[Any]:
    """JSON Logic rules, mostly well-formed so that they reach the database, each field compared with what
    the database cannot bind for its type: numbers beyond 64 bits, lone surrogates, times with no UTC form;
    and some malformed ones."""
    leaves = [
        builder(fields, values) for fields, values in FIELD_VALUES for builder in (_comparison, _membership)
    ]
    any_value = st.one_of(HUGE_NUMBERS, LONE_SURROGATES, st.none(), st.booleans(), st.text(max_size=4))
    malformed = st.builds(
        lambda operator, operands: {operator: operands},
        st.sampled_from(["==", "in", "and", "!", "regex", "\ud800"]),
        st.lists(
            st.one_of(any_value, st.builds(lambda name: {"var": name}, st.text(max_size=4))), max_size=3
        ),
    )
    return st.recursive(
        st.one_of(*leaves, malformed),
        lambda rules: st.one_of(
            st.builds(lambda items: {"and": items}, st.lists(rules, min_size=1, max_size=3)),
            st.builds(lambda items: {"or": items}, st.lists(rules, min_size=1, max_size=3)),
            st.builds(lambda rule: {"!": rule}, rules),
        ),
        max_leaves=3,
    )


def _leaves(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _leaves(value, (*path, index))
    else:
        yield path, document


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = _replaced(document[path[0]], path[1:], value)
    return copy


@st.composite
def _hostile_body(draw: st.DrawFn, body: Any) -> bytes:
    """The JSON body with one hostile change, as the bytes to send."""
    leaves = list(_leaves(body))
    kind = draw(st.sampled_from(["surrogate", "huge number", "surrogate key", "truncated", "oversize"]))
    if kind in ("surrogate", "huge number") and leaves:
        path, _ = draw(st.sampled_from(leaves))
        body = _replaced(body, path, draw(LONE_SURROGATES if kind == "surrogate" else HUGE_NUMBERS))
    elif kind == "surrogate key" and isinstance(body, dict):
        body = {**body, draw(LONE_SURROGATES): 1}
    text = json.dumps(body).encode()  # json.dumps writes a lone surrogate as its "\ud800" escape
    if kind == "truncated":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "oversize":
        return text + b" " * MAX_JSON_BYTES
    return text


@st.composite
def hostile(draw: st.DrawFn, case: schemathesis.Case) -> dict[str, Any]:
    """What to change in `case`: `query`, `body` (the bytes to send) or `headers`."""
    choices = ["content-length"]
    if any(parameter.name == "filter" for parameter in case.operation.query):
        choices += ["filter"] * 4
    if case.media_type == "application/json" and isinstance(case.body, dict | list):
        choices += ["body"] * 4
    choice = draw(st.sampled_from(choices))
    if choice == "filter":
        return {"query": {**case.query, "filter": json.dumps(draw(_filter_rules()))}}
    if choice == "body":
        return {"body": draw(_hostile_body(case.body))}
    return {"headers": {"Content-Length": draw(st.sampled_from(["-1", "abc", "1e3", "2, 3", "-0"]))}}


@pytest.fixture(scope="module")
def sessions() -> Iterator[sessionmaker[Session]]:
    with TestClient(APP):
        engine = create_db_engine(APP.state.settings.database_url)
        yield sessionmaker(engine)
        engine.dispose()
    shutil.rmtree(DATA_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def api_key(sessions: sessionmaker[Session]) -> dict[str, str]:
    return make_key(sessions, "schemathesis")


def worker_seen_now(sessions: sessionmaker[Session]) -> None:
    """A worker that reported just now, so /readyz may answer 200 (its 503 is a server error to
    schemathesis, though documented) however long the run takes."""
    with session_scope(sessions) as session:
        session.merge(WorkerBeat(name="schemathesis-worker", seen_at=utc_now()))


def check_refused_cleanly(response: Any) -> None:
    """A hostile request gets a problem (or, for a filter that happens to be valid, its answer), never a
    500, and the problem names fields, not positions in the body."""
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.request.method != "HEAD":  # HEAD answers carry no body
        assert response.headers.get("content-type") == ["application/problem+json"], response.text
        errors = response.json().get("errors") or {}
        assert not any(name.isdigit() for name in errors), f"a field named by a number: {errors}"


@schema.parametrize()
# Derandomized: the same examples on every run, so CI cannot fail on a draw this machine never made.
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(
    case: schemathesis.Case, api_key: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    if case.path == "/readyz":
        worker_seen_now(sessions)
    # positive_data_acceptance expects 2xx for any schema-valid request, but ids that match the schema may
    # still name nothing (404/422) and uploads may hold no photo (415): refusals the document lists.
    case.call_and_validate(headers=api_key, excluded_checks=[positive_data_acceptance])


@hostile_schema.parametrize()
@hostile_schema.given(data=st.data())
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_refuses_hostile_input_cleanly(
    case: schemathesis.Case, data: st.DataObject, api_key: dict[str, str], sessions: sessionmaker[Session]
) -> None:
    if case.path == "/readyz":
        worker_seen_now(sessions)
    change = data.draw(hostile(case))
    if "query" in change:
        case.query = change["query"]
    if "body" in change:
        case.body = change["body"]
    check_refused_cleanly(case.call(headers={**api_key, **change.get("headers", {})}))
