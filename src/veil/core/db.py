"""Database engine, sessions and migrations.

SQLite (the one-machine default) runs in WAL mode with a busy timeout, so the API and several worker
processes can write at once; transactions are kept short.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from veil.core.owner_only import create_file

__all__ = ["create_db_engine", "has_veil_tables", "migrate", "printable_url", "session_scope"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def create_db_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite, creates the file owner-only (with its folders) and sets WAL, busy
    timeout and foreign keys."""
    parsed = make_url(url)
    # Statement parameters stay out of error messages, which end up in logs: they hold callback URLs and
    # callback secrets.
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
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
