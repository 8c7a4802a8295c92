"""The embedded broker for one machine: kombu's SQLAlchemy transport on a SQLite file, tuned.

Three changes to the stock transport: the SQLite file is opened like Veil's database (WAL, busy timeout,
owner-only), so the API and the workers can write it at once; an idle worker looks for new messages every
0.1 s instead of every second, which otherwise adds up to a second of waiting to every task; and a message
is deleted once taken. The stock transport keeps every taken message with `visible=False` and never reads
it again (an unacknowledged message comes back by being put again, when its channel closes), so the table
and the file grew by every task ever run.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy
from sqlalchemy.exc import OperationalError

from veil.core.db import create_db_engine

__all__ = ["EMBEDDED_SCHEMES", "Transport", "embedded_broker_url"]

ALIAS = "veil-sqla"
EMBEDDED_SCHEMES = ("sqla+", "sqlalchemy+")
POLLING_INTERVAL_S = 0.1


class Channel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self) -> Any:
        return create_db_engine(self.connection.client.hostname)

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
