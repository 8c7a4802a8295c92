"""Readiness: can this installation take and run tasks? The database answers, the broker accepts a
connection, storage can be written, and at least one worker has reported recently."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass

from kombu.connection import Connection
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from veil.core.services.stats import WORKER_ALIVE_S, workers_alive
from veil.core.storage import Storage, StorageUnavailableError

__all__ = [
    "BROKER_TIMEOUT_S",
    "Readiness",
    "broker_problem",
    "check_readiness",
    "storage_problem",
]

BROKER_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    """What is not ready, by check ("database", "broker", "storage", "workers"), and how many workers are
    alive."""

    problems: dict[str, list[str]]
    workers: int


def _ping_broker(url: str, timeout_s: float) -> None:
    with Connection(url, connect_timeout=timeout_s) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
        # Opening a channel is a round trip on network brokers.
        connection.channel().close()


def broker_problem(url: str, *, timeout_s: float = BROKER_TIMEOUT_S, details: bool = False) -> str | None:
    """None when the broker at `url` accepts a connection within `timeout_s`, else why not: with the
    error's own words when `details` (for an operator), else only its kind (for anyone; the details go
    to the log).

    The attempt runs in its own thread so that a broker that never answers costs `timeout_s`, whatever
    the transport's own timeouts do.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="veil-broker-check")
    try:
        executor.submit(_ping_broker, url, timeout_s).result(timeout=timeout_s)
    except FutureTimeoutError:
        return f"the broker did not answer within {timeout_s:g} s"
    except Exception as exc:  # any failure to connect, whatever the transport raises, means not ready
        if details:
            return f"cannot connect to the broker: {exc}"
        log.warning("broker not ready", exc_info=exc)
        return f"cannot connect to the broker ({type(exc).__name__}); the server log has the details"
    finally:
        executor.shutdown(wait=False)
    return None


def storage_problem(storage: Storage) -> str | None:
    """None when `storage` can be read and written, else why not (details in the log only)."""
    try:
        storage.check()
    except StorageUnavailableError as exc:
        log.warning("storage not ready", exc_info=exc)
        return f"cannot use the storage ({type(exc).__name__}); the server log has the details"
    return None


def check_readiness(session: Session, *, broker_url: str, storage: Storage) -> Readiness:
    """Runs the four checks; a database that does not answer also leaves the worker count unknown (0)."""
    problems: dict[str, list[str]] = {}
    workers = 0
    try:
        session.execute(text("SELECT 1"))
        workers = workers_alive(session)
    except SQLAlchemyError as exc:
        log.warning("database not ready", exc_info=exc)
        problems["database"] = [f"the database does not answer ({type(exc).__name__})"]
    broker = broker_problem(broker_url)
    if broker is not None:
        problems["broker"] = [broker]
    stored = storage_problem(storage)
    if stored is not None:
        problems["storage"] = [stored]
    if "database" not in problems and workers == 0:
        problems["workers"] = [f"no worker has reported in the last {WORKER_ALIVE_S:g} s"]
    return Readiness(problems=problems, workers=workers)
