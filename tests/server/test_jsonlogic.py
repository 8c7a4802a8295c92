"""JSON Logic filters become SQL conditions that the database evaluates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from veil.core.database.jsonlogic import MAX_DEPTH, filter_to_sql, rule_to_sql
from veil.core.database.models import ApiKey, Base, Task
from veil.core.errors import InvalidInputError
from veil.core.services.tasks import TASK_LISTING

FIELDS = TASK_LISTING.fields


def at(day: int) -> datetime:
    return datetime(2025, 1, day, 12, 0, tzinfo=UTC)


ROWS = [
    # id, operation, status, progress, input, created_at
    ("task_a", "anonymize", "completed", 1.0, {"file": "file_beach"}, at(1)),
    ("task_b", "detect", "queued", 0.0, {"file": "file_city"}, at(2)),
    ("task_c", "anonymize", "started", 0.5, {"task": "task_a"}, at(3)),
    ("task_d", "anonymize", "failed", 0.25, {"file": "file_100%_real"}, at(4)),
]


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(ApiKey(id="key_1", name="alice", key_hash="h", prefix="p", callback_secret="s"))
        for task_id, operation, status, progress, task_input, created in ROWS:
            session.add(
                Task(
                    id=task_id,
                    owner_id="key_1",
                    operation=operation,
                    status=status,
                    progress=progress,
                    input=task_input,
                    created_at=created,
                    updated_at=created,
                )
            )
        session.commit()
        yield session
    engine.dispose()


def matching(session: Session, rule: Any) -> set[str]:
    return set(session.scalars(select(Task.id).where(filter_to_sql(json.dumps(rule), FIELDS))))


def var(name: str) -> dict[str, str]:
    return {"var": name}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"==": [var("status"), "completed"]}, {"task_a"}),
        ({"==": ["completed", var("status")]}, {"task_a"}),
        ({"!=": [var("operation"), "anonymize"]}, {"task_b"}),
        ({">": [var("progress"), 0.3]}, {"task_a", "task_c"}),
        ({">=": [var("progress"), 0.5]}, {"task_a", "task_c"}),
        ({"<": [var("progress"), 0.5]}, {"task_b", "task_d"}),
        ({"<=": [0.2, var("progress"), 0.5]}, {"task_c", "task_d"}),
        ({"<": [var("created_at"), "2025-01-02T12:00:00Z"]}, {"task_a"}),
        ({">=": [var("created_at"), "2025-01-03T12:00:00+00:00"]}, {"task_c", "task_d"}),
        ({">": [var("created_at"), "2025-01-03"]}, {"task_c", "task_d"}),  # a date alone: midnight UTC
        ({"in": [var("status"), ["queued", "started"]]}, {"task_b", "task_c"}),
        ({"in": [var("status"), []]}, set()),
        ({"in": ["_b", var("id")]}, {"task_b"}),
        ({"in": ["%", var("input")]}, {"task_d"}),  # LIKE wildcards match themselves
        ({"==": [var("input"), "task_a"]}, {"task_c"}),
        ({"==": [var(["input"]), "file_city"]}, {"task_b"}),
        (
            {"and": [{"==": [var("operation"), "anonymize"]}, {"<": [var("progress"), 1]}]},
            {"task_c", "task_d"},
        ),
        (
            {"or": [{"==": [var("status"), "queued"]}, {"==": [var("status"), "failed"]}]},
            {"task_b", "task_d"},
        ),
        ({"!": {"==": [var("operation"), "anonymize"]}}, {"task_b"}),
        ({"!": [{"in": [var("status"), ["completed", "failed"]]}]}, {"task_b", "task_c"}),
        ({"==": [var("input"), None]}, set()),
        ({"!=": [var("input"), None]}, {"task_a", "task_b", "task_c", "task_d"}),
        # The edges of what the database takes: 64-bit integers, and floats out to infinity.
        ({"<": [var("progress"), 2**63 - 1]}, {"task_a", "task_b", "task_c", "task_d"}),
        ({">": [var("progress"), -(2**63)]}, {"task_a", "task_b", "task_c", "task_d"}),
        ({"<": [var("progress"), 1e308 * 10]}, {"task_a", "task_b", "task_c", "task_d"}),
    ],
)
def test_filters_select_the_rows_they_describe(session: Session, rule: Any, expected: set[str]) -> None:
    assert matching(session, rule) == expected


def test_a_filter_is_one_sql_where_clause() -> None:
    rule = {"and": [{"in": [var("status"), ["queued", "started"]]}, {">": [var("created_at"), "2025-01-02"]}]}

    sql = str(
        select(Task.id)
        .where(filter_to_sql(json.dumps(rule), FIELDS))
        .compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    )

    where = " ".join(sql.split("WHERE", 1)[1].split())
    assert (
        where == "tasks.status IN ('queued', 'started') AND tasks.created_at > '2025-01-02 00:00:00.000000'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "A rule is an object with one operator"),
        ('{"var": "status"}', "A rule is an object with one operator"),
        ('{"==": [1, 2], "!=": [1, 2]}', "A rule is an object with one operator"),
        ('{"regex": [{"var": "status"}, "^c"]}', "Unknown operator 'regex'"),
        (
            '{"==": [{"var": "owner_id"}, "key_1"]}',
            'Unknown field "owner_id" in the filter; the filter fields are: created_at, id, input, operation',
        ),
        ('{"==": [{"var": "status"}]}', '"==" takes a list of 2 operands'),
        ('{"==": [{"var": "status"}, "a", "b"]}', '"==" takes a list of 2 operands'),
        ('{"in": [{"var": "status"}, "queued"]}', '"in" takes a field and a list of values'),
        ('{"in": ["x", {"var": "progress"}]}', '"in" takes a field and a list of values'),
        ('{"and": []}', '"and" takes a non-empty list of rules'),
        (
            '{"!": [{"==": [{"var": "id"}, "a"]}, {"==": [{"var": "id"}, "b"]}]}',
            '"!" takes a list of 1 operand',
        ),
        ('{"==": ["a", "b"]}', "one side must be a field"),
        ('{"<": [{"var": "progress"}, null]}', "cannot compare with null"),
        ('{"==": [{"var": "progress"}, "high"]}', 'compares a number field with "high"'),
        ('{"==": [{"var": "progress"}, true]}', "compares a number field with true"),
        ('{"==": [{"var": "status"}, 3]}', "compares a text field with 3"),
        ('{"<": [{"var": "created_at"}, "last week"]}', "'last week' is not an ISO 8601 time"),
        ('{"==": [{"var": "status"}, {"+": [1, 2]}]}', "Expected a field"),
        ('{"!": ' * (MAX_DEPTH + 1) + '{"==": [{"var": "id"}, "a"]}' + "}" * (MAX_DEPTH + 1), "deeper than"),
        ("[" * 100_000 + "]" * 100_000, "deeper than"),
        # What SQLite cannot bind would otherwise fail in the database, as a 500.
        ('{"==": [{"var": "progress"}, 9223372036854775808]}', "out of range; filter numbers fit in 64 bits"),
        ('{"in": [{"var": "progress"}, [1, -9223372036854775809]]}', "out of range"),
        ('{"<": [0, {"var": "progress"}, 123456789012345678901234567890]}', "out of range"),
        ('{"==": [{"var": "status"}, "\\ud800"]}', 'The text "\\ud800" holds a lone surrogate'),
        ('{"in": ["a\\udfff", {"var": "id"}]}', "lone surrogate"),
        ('{"in": [{"var": "status"}, ["queued", "\\udc00"]]}', "lone surrogate"),
        ('{"<": [{"var": "created_at"}, "2025\\ud800"]}', "lone surrogate"),
        ('{"<": [{"var": "created_at"}, "0001-01-01T00:00:00+00:01"]}', "is outside the range of times"),
        ('{">": [{"var": "created_at"}, "9999-12-31T23:59:59-01:00"]}', "is outside the range of times"),
    ],
)
def test_bad_filters_are_refused_with_a_message_under_filter(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        filter_to_sql(text, FIELDS)

    (found,) = caught.value.errors["filter"]
    assert message in found


def test_a_filter_at_the_depth_limit_is_accepted() -> None:
    rule: Any = {"==": [var("id"), "a"]}
    for _ in range(MAX_DEPTH - 1):
        rule = {"!": rule}

    rule_to_sql(rule, FIELDS)
