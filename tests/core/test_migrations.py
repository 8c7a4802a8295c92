"""The migrations build exactly the tables the models describe, and step down again."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from veil.core import db
from veil.core.db import create_db_engine, migrate
from veil.core.models import Base

MIGRATIONS = Path(db.__file__).with_name("migrations")


def test_the_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'veil.db'}"
    migrate(url)
    engine = create_db_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_uploads_migration_steps_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'veil.db'}"
    migrate(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_db_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    assert "uploads" not in inspect(engine).get_table_names()
    engine.dispose()


def test_key_file_roots_migration_steps_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'veil.db'}"
    migrate(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_db_engine(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    columns = {
        table: {c["name"] for c in inspect(engine).get_columns(table)}
        for table in ("api_keys", "expiring_paths")
    }
    assert "file_root" not in columns["api_keys"]
    assert "root" not in columns["expiring_paths"]
    engine.dispose()
