"""The embedded broker for one machine: kombu's SQLAlchemy transport on a SQLite file, tuned.

Four changes to the stock transport: the SQLite file is opened like Veil's database (WAL, busy timeout,
owner-only), so the API and the workers can write it at once; an idle worker looks for new messages every
0.1 s instead of every second, which otherwise adds up to a second of waiting to every task; and a message
is deleted once taken. The stock transport keeps every taken message with `visible=False` and never reads
it again (an unacknowledged message comes back by being put again, when its channel closes), so the table
and the file grew by every task ever run. And a message is written with one INSERT: the stock transport
looked its queue up and flushed an ORM object for every message, which cost as much CPU as the rest of
submitting a task.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from veil.core.database.connection import create_db_engine

__all__ = ["EMBEDDED_SCHEMES", "Transport", "embedded_broker_url"]

ALIAS = "veil-sqla"
EMBEDDED_SCHEMES = ("sqla+", "sqlalchemy+")
POLLING_INTERVAL_S = 0.1


class Channel(kombu_sqlalchemy.Channel):
    @cached_property
    def _queue_ids(self) -> dict[str, int]:
        """Row ids of the queues this channel wrote to, by name."""
        return {}

    def _engine_from_config(self) -> Any:
        return create_db_engine(self.connection.client.hostname)

    # kombu's virtual channel names the second argument `message`, its SQLAlchemy one `payload`.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Stores the message as the stock transport does (visible, version 1, no time until taken), in one
        INSERT on its queue's row id, read once per channel: the transport never deletes a queue row."""
        if queue not in self._queue_ids:
            self._queue_ids[queue] = self._get_or_create(queue).id  # type: ignore[no-untyped-call]
        row = {"queue_id": self._queue_ids[queue], "payload": json.dumps(payload)}
        try:
            self.session.execute(insert(self.message_cls.__table__), row)
            self.session.commit()
        except OperationalError:
            self.session.rollback()  # the publish fails, and may be retried
            raise

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        payload = super()._get(queue)  # type: ignore[no-untyped-call]  # raises Empty when there is none
        self._delete_taken()
        return payload

    def _delete_taken(self) -> None:
        """Deletes the taken messages: the one just taken, and any that a process stopped between taking
        and deleting left."""
        taken = self.session.query(self.message_cls).filter(self.message_cls.visible.is_(False))
        try:
            taken.delete(synchronize_session=False)
            self.session.commit()
        except OperationalError:
            self.session.rollback()  # the next take deletes it; the message itself is already handed out


class Transport(kombu_sqlalchemy.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL_S


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")


def embedded_broker_url(url: str) -> str:
    """`url` pointed at this transport when it names kombu's SQLAlchemy one; other brokers unchanged."""
    for scheme in EMBEDDED_SCHEMES:
        if url.startswith(scheme):
            return f"{ALIAS}+{url.removeprefix(scheme)}"
    return url
