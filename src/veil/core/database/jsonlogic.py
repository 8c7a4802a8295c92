"""JSON Logic filters (https://jsonlogic.com/), as in CVAT's `filter` parameter, turned into SQL.

A filter is translated into one SQLAlchemy boolean expression over an allow-list of fields, so the database
does the filtering; no row is ever evaluated in Python. The supported subset:

    {"==": [a, b]}   also "!=", "<", "<=", ">", ">="; "<" and "<=" also take three ({"<": [1, x, 5]})
    {"in": [{"var": "status"}, ["queued", "started"]]}   the field is one of the values
    {"in": ["beach", {"var": "name"}]}                   the text field contains the text
    {"and": [rule, ...]}, {"or": [rule, ...]}, {"!": rule}
    {"var": "field"}

Each comparison compares a field with a value (or with another field). Values are checked against the
field's type; times are ISO 8601 strings ("2025-01-31T12:00:00Z", a time without zone is UTC).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from sqlalchemy import and_, false, not_, or_
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from veil.core.errors import InvalidInputError

__all__ = ["MAX_DEPTH", "FilterField", "filter_to_sql", "rule_to_sql"]

FilterField = ColumnElement[Any] | QueryableAttribute[Any]
"""A column or SQL expression a filter may name, e.g. `Task.status`."""

MAX_DEPTH = 16
"""Deepest nesting of rules accepted; real filters are a few levels deep."""

_MAX_VALUES = 1000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_COMPARISONS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "==": lambda left, right: left == right,
    "!=": lambda left, right: left != right,
    "<": lambda left, right: left < right,
    "<=": lambda left, right: left <= right,
    ">": lambda left, right: left > right,
    ">=": lambda left, right: left >= right,
}
_OPERATORS = (*_COMPARISONS, "in", "and", "or", "!")


def filter_to_sql(text: str, fields: Mapping[str, FilterField]) -> ColumnElement[bool]:
    """The SQL condition for a JSON Logic filter given as JSON text.

    Args:
        text: the filter, e.g. '{"==": [{"var": "status"}, "completed"]}'.
        fields: the fields a filter may name, {API field name: column or expression}.

    Raises:
        InvalidInputError: under `filter`, saying what is wrong (not JSON, unknown operator or field,
            wrong number of operands, a value of the wrong type, nesting deeper than `MAX_DEPTH`).
    """
    try:
        rule = json.loads(text)
    except RecursionError:
        _invalid(f"The filter nests deeper than {MAX_DEPTH} levels.")
    except ValueError as exc:
        _invalid(f"The filter is not valid JSON: {exc}.")
    return rule_to_sql(rule, fields)


def rule_to_sql(rule: Any, fields: Mapping[str, FilterField]) -> ColumnElement[bool]:
    """The SQL condition for a JSON Logic rule already parsed from JSON; see `filter_to_sql`."""
    return _Translator(fields).rule(rule, depth=1)


@dataclass(frozen=True)
class _Operand:
    """One side of a comparison: a field, or a literal value (None: JSON null)."""

    column: ColumnElement[Any] | None = None
    value: Any = None

    @property
    def is_null(self) -> bool:
        return self.column is None and self.value is None


class _Translator:
    def __init__(self, fields: Mapping[str, FilterField]) -> None:
        self.fields = {name: _expression(field) for name, field in fields.items()}

    def rule(self, node: Any, depth: int) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            _invalid(f"The filter nests deeper than {MAX_DEPTH} levels.")
        operator, args = _split(node)
        if operator in ("and", "or"):
            if not isinstance(args, list) or not args:
                _invalid(f'"{operator}" takes a non-empty list of rules.')
            rules = [self.rule(arg, depth + 1) for arg in args]
            return and_(*rules) if operator == "and" else or_(*rules)
        if operator == "!":
            negated = _exactly(operator, args, 1)[0] if isinstance(args, list) else args
            return not_(self.rule(negated, depth + 1))
        if operator == "in":
            return self.membership(_exactly(operator, args, 2))
        between = operator in ("<", "<=") and isinstance(args, list) and len(args) == 3
        operands = [self.operand(arg) for arg in (args if between else _exactly(operator, args, 2))]
        return and_(*(self.compare(operator, *pair) for pair in itertools.pairwise(operands)))

    def compare(self, operator: str, left: _Operand, right: _Operand) -> ColumnElement[bool]:
        column = left.column if left.column is not None else right.column
        if column is None:
            _invalid(f'"{operator}" compares two values; one side must be a field ({{"var": "name"}}).')
        if (left.is_null or right.is_null) and operator not in ("==", "!="):
            _invalid(f'"{operator}" cannot compare with null; use "==" or "!=".')
        return _COMPARISONS[operator](_side(left, column, operator), _side(right, column, operator))

    def membership(self, args: list[Any]) -> ColumnElement[bool]:
        needle, haystack = (self.operand(arg) for arg in args)
        if needle.column is not None and isinstance(haystack.value, list):
            if len(haystack.value) > _MAX_VALUES:
                _invalid(f'"in" takes at most {_MAX_VALUES} values.')
            values = [_coerce(needle.column, value, "in") for value in haystack.value]
            return needle.column.in_(values) if values else false()
        if (
            haystack.column is not None
            and isinstance(needle.value, str)
            and _python_type(haystack.column) is str
        ):
            return haystack.column.contains(needle.value, autoescape=True)
        _invalid(
            '"in" takes a field and a list of values ({"in": [{"var": "status"}, ["queued", "started"]]}) '
            'or a text and a text field ({"in": ["beach", {"var": "name"}]}).'
        )

    def operand(self, node: Any) -> _Operand:
        if isinstance(node, dict) and set(node) == {"var"}:
            return _Operand(column=self.var(node["var"]))
        if node is None or isinstance(node, str | int | float | bool | list):
            for value in node if isinstance(node, list) else (node,):
                _check_storable(value)
            return _Operand(value=node)
        _invalid(f'Expected a field ({{"var": "name"}}) or a value, got {_show(node)}.')

    def var(self, name: Any) -> ColumnElement[Any]:
        if isinstance(name, list) and len(name) == 1:
            name = name[0]  # {"var": ["status"]} is the same as {"var": "status"}; defaults are not supported
        if not isinstance(name, str) or name not in self.fields:
            known = ", ".join(sorted(self.fields))
            _invalid(f"Unknown field {_show(name)} in the filter; the filter fields are: {known}.")
        return self.fields[name]


def _split(node: Any) -> tuple[str, Any]:
    if not isinstance(node, dict) or len(node) != 1 or "var" in node:
        _invalid(
            'A rule is an object with one operator, such as {"==": [{"var": "status"}, "completed"]}; '
            f"got {_show(node)}."
        )
    ((operator, args),) = node.items()
    if operator not in _OPERATORS:
        _invalid(f"Unknown operator {operator!r} in the filter; the operators are: {', '.join(_OPERATORS)}.")
    return operator, args


def _exactly(operator: str, args: Any, count: int) -> list[Any]:
    if not isinstance(args, list) or len(args) != count:
        _invalid(f'"{operator}" takes a list of {count} operand{"s" if count > 1 else ""}.')
    return args


def _side(operand: _Operand, column: ColumnElement[Any], operator: str) -> Any:
    if operand.column is not None:
        return operand.column
    return _coerce(column, operand.value, operator)


def _coerce(column: ColumnElement[Any], value: Any, operator: str) -> Any:
    """`value` as the Python type of `column`, so the database compares like with like."""
    kind = _python_type(column)
    if value is None:
        return None
    if kind is datetime and isinstance(value, str):
        return _parse_time(value)
    if kind in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    _invalid(f'"{operator}" compares a {_type_name(kind)} field with {_show(value)}.')


def _check_storable(value: Any) -> None:
    """Refuses what the database cannot take as a parameter: an integer beyond 64 bits, or text holding a
    lone surrogate (JSON's "\\ud800" escape decodes to one; it has no UTF-8 form)."""
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
        _invalid(f"The number {_show(value)} is out of range; filter numbers fit in 64 bits.")
    if isinstance(value, str) and not _is_unicode(value):
        _invalid(f"The text {_show(value)} holds a lone surrogate, which is not a Unicode character.")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_time(value: str) -> datetime:
    """`value` as a UTC time; the database stores UTC, and a time at the edge of the calendar may have none
    (0001-01-01T00:00:00+01:00)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _invalid(f"{value!r} is not an ISO 8601 time such as 2025-01-31T12:00:00Z.")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        _invalid(f"{value!r} is outside the range of times.")


def _expression(field: FilterField) -> ColumnElement[Any]:
    return field.expression if isinstance(field, QueryableAttribute) else field


def _python_type(column: ColumnElement[Any]) -> type:
    sql_type: TypeEngine[Any] = column.type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance  # e.g. UTCDateTime: the stored type tells the Python type
    return sql_type.python_type


def _type_name(kind: type) -> str:
    return {datetime: "time", int: "number", float: "number", str: "text"}.get(kind, kind.__name__)


def _show(node: Any) -> str:
    """A JSON fragment short enough for an error message."""
    text = json.dumps(node)
    return text if len(text) <= 80 else text[:77] + "..."


def _invalid(message: str) -> NoReturn:
    raise InvalidInputError({"filter": [message]})
