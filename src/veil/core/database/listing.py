"""Listings of files and tasks: ownership, equality filters, search, JSON Logic filter, sort and pages,
all done by the database in one query (and one count)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from veil.core.database.jsonlogic import FilterField, filter_to_sql, rule_to_sql
from veil.core.database.models import ApiKey
from veil.core.errors import InvalidInputError
from veil.core.schemas import ListQuery

__all__ = ["Listing", "fetch_page", "visible_to"]


@dataclass(frozen=True)
class Listing:
    """What a resource's listing may use.

    Attributes:
        model: the table's class, e.g. `Task`.
        fields: {API field name: column or expression}: what `sort`, `filter` and equality filters may name.
        search_fields: the text fields `search` looks in.
        default_sort: e.g. "-created_at"; rows with equal sort keys are ordered by `id` so pages are stable.
    """

    model: type[Any]
    fields: Mapping[str, FilterField]
    search_fields: Sequence[str]
    default_sort: str = "-created_at"


def visible_to(key: ApiKey, owner_column: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """The rows `key` may see: its own, or every row for an admin key."""
    return true() if key.is_admin else owner_column == key.id


def fetch_page(
    session: Session,
    *,
    listing: Listing,
    query: ListQuery,
    where: Sequence[ColumnElement[bool]],
) -> tuple[int, list[Any]]:
    """The total count of matching rows and the rows of the requested page.

    Args:
        listing: the resource's fields.
        query: page, page_size, sort, search, filter, plus the resource's equality filters (the fields of
            the `ListQuery` subclass, ignored when None).
        where: conditions always applied (ownership, the API a task belongs to).

    Raises:
        InvalidInputError: an unknown sort field (under `sort`) or a bad filter (under `filter`).
    """
    statement = select(listing.model).where(*where, *_conditions(listing, query))
    count = session.scalar(statement.with_only_columns(func.count()).order_by(None)) or 0
    ordered = statement.order_by(*_order(listing, query.sort or listing.default_sort))
    rows = session.scalars(ordered.limit(query.page_size).offset((query.page - 1) * query.page_size))
    return count, list(rows)


def _conditions(listing: Listing, query: ListQuery) -> list[ColumnElement[bool]]:
    # The equality filters are the fields a resource's query adds to ListQuery; they go through the same
    # translation as a filter, so values are checked against the field types the same way.
    equals = query.model_dump(exclude=set(ListQuery.model_fields), exclude_none=True)
    rules = [{"==": [{"var": name}, value]} for name, value in equals.items()]
    conditions = [rule_to_sql(rule, listing.fields) for rule in rules]
    if query.search:
        term = query.search
        conditions.append(
            or_(*(listing.fields[name].icontains(term, autoescape=True) for name in listing.search_fields))
        )
    if query.filter:
        conditions.append(filter_to_sql(query.filter, listing.fields))
    return conditions


def _order(listing: Listing, sort: str) -> list[ColumnElement[Any]]:
    order: list[ColumnElement[Any]] = []
    for item in sort.split(","):
        name = item.strip().removeprefix("-")
        if name not in listing.fields:
            known = ", ".join(sorted(listing.fields))
            raise InvalidInputError({"sort": [f"Cannot sort by {name!r}; the sort fields are: {known}."]})
        column = listing.fields[name]
        order.append(column.desc() if item.strip().startswith("-") else column.asc())
    order.append(listing.fields["id"].asc())
    return order
