"""The embedded broker (kombu's SQLAlchemy transport, tuned): messages go through, and taken ones are
deleted, so the table and the file stay small however many tasks ran."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from kombu import Connection

from veil.core.broker import embedded_broker_url
from veil.core.settings import Settings

# kombu's own table mapping uses a loader option SQLAlchemy 2.1 deprecates; nothing for Veil to change.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

TASKS = 1000
BATCH = 10


def run_tasks(broker_url: str, count: int) -> list[str]:
    """Sends task messages in batches of `BATCH`, each taken and acknowledged as a worker does, `count` in
    all; returns the ids in the order they were taken."""
    taken: list[str] = []
    with Connection(broker_url) as connection:
        queue = connection.SimpleQueue("celery")
        for start in range(0, count, BATCH):
            for index in range(start, start + BATCH):
                queue.put({"task_id": f"task_{index}"})
            for _ in range(BATCH):
                message = queue.get(timeout=5)
                taken.append(message.payload["task_id"])
                message.ack()
        queue.close()
    return taken


def message_rows(broker_file: Path) -> int:
    with sqlite3.connect(broker_file) as database:
        (count,) = database.execute("SELECT count(*) FROM kombu_message").fetchone()
    return int(count)


def test_after_1000_tasks_the_message_table_is_empty_and_the_file_bounded(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    broker_url, broker_file = embedded_broker_url(settings.broker_url), settings.data_dir / "broker.db"

    first = run_tasks(broker_url, 100)
    size_after_100 = broker_file.stat().st_size
    rest = run_tasks(broker_url, TASKS - 100)

    assert first + rest == [f"task_{index}" for index in range(100)] + [
        f"task_{index}" for index in range(TASKS - 100)
    ], "each message once, in order"
    assert message_rows(broker_file) == 0
    # Deleted rows free pages that later messages reuse: the file does not grow with the tasks run.
    assert broker_file.stat().st_size == size_after_100
