"""A worker's sign of life: a `WorkerBeat` row refreshed every few seconds, deleted when it stops cleanly.

Readiness counts workers seen recently (`veil.core.services.stats.WORKER_ALIVE_S`); a worker killed outright
leaves a row that simply stops being recent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from sqlalchemy import Engine, delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.connection import create_db_engine, session_scope
from veil.core.database.models import WorkerBeat, utc_now

__all__ = ["BEAT_INTERVAL_S", "WorkerHeartbeat"]

BEAT_INTERVAL_S = 5.0

log = logging.getLogger(__name__)


class WorkerHeartbeat:
    """Refreshes this process's `WorkerBeat` row (named host:pid) from a background thread."""

    def __init__(self, database_url: str, interval_s: float = BEAT_INTERVAL_S) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._database_url = database_url
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def start(self) -> None:
        """Writes the row at once (so readiness sees the worker immediately), then keeps it fresh."""
        self._engine = create_db_engine(self._database_url)
        self._sessions = sessionmaker(self._engine)
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="veil-worker-beat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread and deletes the row."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._sessions is not None:
            try:
                with session_scope(self._sessions) as session:
                    session.execute(delete(WorkerBeat).where(WorkerBeat.name == self.name))
            except SQLAlchemyError:
                log.warning("could not remove worker beat %s", self.name, exc_info=True)
        if self._engine is not None:
            self._engine.dispose()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._beat()

    def _beat(self) -> None:
        assert self._sessions is not None  # set by start()
        try:
            with session_scope(self._sessions) as session:
                row = session.get(WorkerBeat, self.name)
                if row is None:
                    session.add(WorkerBeat(name=self.name))
                else:
                    row.seen_at = utc_now()
        except SQLAlchemyError:
            log.warning("could not record worker beat %s; trying again", self.name, exc_info=True)
