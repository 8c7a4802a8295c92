"""The database engine: errors that keep statement parameters (secrets) to themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from veil.core.database.connection import create_db_engine, migrate
from veil.core.database.models import ApiKey

SECRET = "c140f6ed89e130c8d29e5e6decfae1f6b51e8d88a2e1239f1ead85850949691b"


def test_a_database_error_does_not_show_the_values_it_was_given(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'veil.db'}"
    migrate(url)
    engine = create_db_engine(url)
    row = {"name": "alice", "key_hash": "h", "prefix": "veil_abcd", "callback_secret": SECRET}
    with Session(engine) as session:
        session.add(ApiKey(id="key_1", **row))
        session.commit()
        session.add(ApiKey(id="key_1", **row))
        with pytest.raises(IntegrityError) as caught:
            session.commit()
    engine.dispose()

    assert "UNIQUE constraint failed" in str(caught.value)
    assert SECRET not in str(caught.value), "an error logged with its traceback would carry the secret"
