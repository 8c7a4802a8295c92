"""Database engine, sessions and migrations.

SQLite (the one-machine default) runs in WAL mode with a busy timeout, so the API and several worker
processes can write at once; transactions are kept short. PostgreSQL (`postgresql+psycopg://`, for
several machines) gets a connection pool per process, checked before use so that a restarted database
costs no request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from veil.core.safety.permissions import create_file

__all__ = ["create_db_engine", "has_veil_tables", "migrate", "printable_url", "session_scope"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x7665696C  # "veil": the PostgreSQL advisory lock key migrations take


POOL_SIZE = 10
"""Connections a process keeps open. An API process runs its sync routes on up to 40 threads, each
holding a connection only for a short transaction; a worker process needs one or two."""
POOL_OVERFLOW = 20
"""Extra connections a busy moment may open beyond the pool, closed when returned. With the pool, what
one process can hold: size PostgreSQL's `max_connections` for (processes x 30) plus room."""
POOL_RECYCLE_S = 1800


def create_db_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite, creates the file owner-only (with its folders) and sets WAL, busy
    timeout and foreign keys. `postgresql://` means the psycopg 3 driver Veil installs."""
    parsed = make_url(url)
    # Statement parameters stay out of error messages, which end up in logs: they hold callback URLs and
    # callback secrets.
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_recycle=POOL_RECYCLE_S,
            hide_parameters=True,
        )
    if parsed.database and parsed.database != ":memory:":
        create_file(Path(parsed.database))
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(url: str) -> None:
    """Brings the database at `url` to the newest schema (Alembic `upgrade head`)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Several API processes start at once on several hosts: one migrates, the others wait for
                # it and then find nothing left to do. Released when the transaction ends.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def has_veil_tables(url: str) -> bool:
    """Whether the database at `url` exists and holds Veil's tables. A missing SQLite file is not created to
    find out.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached.
        ImportError: the URL's database driver is not installed.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and Path(parsed.database).is_file()):
        return False
    engine = create_db_engine(url)
    try:
        return inspect(engine).has_table("api_keys")
    finally:
        engine.dispose()


def printable_url(url: str) -> str:
    """`url` with its password, if any, masked (`postgresql://veil:***@db/veil`), to show or log."""
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back when it raises."""
    with factory() as session, session.begin():
        yield session
