"""The migrations build exactly the tables the models describe, and step down again, on SQLite and on
PostgreSQL (a private database made for the run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from tests.services import private_postgres
from veil.core.database import connection as db
from veil.core.database.connection import create_db_engine, migrate
from veil.core.database.models import Base

MIGRATIONS = Path(db.__file__).with_name("migrations")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'veil.db'}"
        return
    with private_postgres() as postgres_url:
        yield postgres_url


def test_the_migrated_schema_matches_the_models(url: str) -> None:
    migrate(url)
    migrate(url)  # a second start finds nothing to do
    engine = create_db_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def _columns(engine: Engine) -> set[str]:
    """Every table and every `table.column` of the database."""
    schema = inspect(engine)
    tables = set(schema.get_table_names())
    return tables | {f"{table}.{column['name']}" for table in tables for column in schema.get_columns(table)}


@pytest.mark.parametrize(
    ("revision", "gone"),
    [
        ("0004", {"video_segments"}),
        ("0003", {"video_segments", "leases", "tasks.queue"}),
        ("0002", {"video_segments", "leases", "tasks.queue", "api_keys.file_root", "expiring_paths.root"}),
        (
            "0001",
            {
                "video_segments",
                "leases",
                "tasks.queue",
                "uploads",
                "api_keys.file_root",
                "expiring_paths.root",
            },
        ),
    ],
)
def test_migrations_step_down(url: str, revision: str, gone: set[str]) -> None:
    migrate(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_db_engine(url)
    assert gone <= _columns(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
    assert not gone & _columns(engine)
    engine.dispose()
