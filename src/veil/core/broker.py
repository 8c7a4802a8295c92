"""The embedded broker for one machine: kombu's SQLAlchemy transport on a SQLite file, tuned.

Two changes to the stock transport: the SQLite file is opened like Veil's database (WAL, busy timeout), so
the API and the workers can write it at once; and an idle worker looks for new messages every 0.1 s
instead of every second, which otherwise adds up to a second of waiting to every task.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqlalchemy

from veil.core.db import create_db_engine

__all__ = ["EMBEDDED_SCHEMES", "Transport", "embedded_broker_url"]

ALIAS = "veil-sqla"
EMBEDDED_SCHEMES = ("sqla+", "sqlalchemy+")
POLLING_INTERVAL_S = 0.1


class Channel(kombu_sqlalchemy.Channel):
    def _engine_from_config(self) -> Any:
        return create_db_engine(self.connection.client.hostname)


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
