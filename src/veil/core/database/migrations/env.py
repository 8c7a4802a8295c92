"""Alembic environment: runs migrations on the connection that `veil.core.database.connection.migrate`
hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from veil.core.database.models import Base

config = context.config
connection: Connection | None = config.attributes.get("connection")


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    from veil.core.database.connection import create_db_engine

    with create_db_engine(config.get_main_option("sqlalchemy.url") or "").begin() as opened:
        run(opened)
