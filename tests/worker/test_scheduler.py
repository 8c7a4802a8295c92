"""Leases, the periodic jobs they guard, and the job that sends again what the broker lost, here on the
embedded broker (a real one: messages are counted and read back from it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import save_image
from tests.services import private_postgres
from tests.worker.conftest import submit, upload
from veil.core.broker import embedded_broker_url
from veil.core.database.connection import create_db_engine, migrate, session_scope
from veil.core.database.leases import release_lease, take_lease
from veil.core.database.models import ApiKey, BackgroundRequest, Task, utc_now
from veil.core.queue import CALLBACK_QUEUE, PHOTO_QUEUE, VIDEO_QUEUE, TaskQueue, create_celery
from veil.core.scheduler import PeriodicJob, Scheduler
from veil.core.services.maintenance import resend_lost_messages
from veil.core.services.requests import create_request
from veil.core.settings import Settings
from veil.worker.context import WorkerContext

# kombu's own table mapping uses a loader option SQLAlchemy 2.1 deprecates; nothing for Veil to change.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated database of each kind."""
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'veil.db'}"
        if request.param == "postgresql":
            url = stack.enter_context(private_postgres())
        migrate(url)
        engine = create_db_engine(url)
        yield sessionmaker(engine)
        engine.dispose()


def test_a_lease_is_held_by_one_holder_until_it_expires_or_is_released(
    any_sessions: sessionmaker[Session],
) -> None:
    take = {"sessions": any_sessions, "name": "job:x", "ttl_s": 0.3}

    assert take_lease(holder="a", **take)
    assert not take_lease(holder="b", **take)
    assert take_lease(holder="a", **take), "the holder extends its own lease"
    time.sleep(0.35)
    assert take_lease(holder="b", **take), "an expired lease goes to whoever asks"
    release_lease(any_sessions, name="job:x", holder="a")  # not a's any more: nothing happens
    assert not take_lease(holder="c", **take)
    release_lease(any_sessions, name="job:x", holder="b")
    assert take_lease(holder="c", **take)


def test_two_schedulers_run_each_job_once_per_interval(any_sessions: sessionmaker[Session]) -> None:
    runs: list[str] = []
    jobs = [PeriodicJob(name, lambda name=name: runs.append(name)) for name in ("one", "two")]
    first, second = (Scheduler(any_sessions, jobs, interval_s=0.3) for _ in range(2))

    assert first.run_due() == ["one", "two"]
    assert second.run_due() == []
    assert first.run_due() == [], "the scheduler that ran a job waits for the interval too"
    time.sleep(0.35)
    assert second.run_due() == ["one", "two"]
    assert runs == ["one", "two", "one", "two"]


@pytest.fixture
def broker(settings: Settings) -> Iterator[TaskQueue]:
    """A real queue on the embedded broker of `settings`."""
    celery = create_celery(settings)
    yield TaskQueue(celery)
    celery.close()


def _age(context: WorkerContext, task_ids: list[str], **values: Any) -> None:
    with session_scope(context.sessions) as session:
        session.execute(update(Task).where(Task.id.in_(task_ids)).values(**values))


def test_queued_tasks_whose_messages_are_gone_are_sent_again_once(
    context: WorkerContext, owner: ApiKey, broker: TaskQueue, settings: Settings, tmp_path: Path
) -> None:
    """GIVEN two queued photo tasks whose messages the broker does not hold, long queued, and a task
    chained on one of them (it has no message until its input ends)
    WHEN the job runs twice
    THEN the two are sent to the photo queue once, the chained one not at all."""
    photo = upload(context, owner, save_image(tmp_path / "photo.png"))
    task_ids = [submit(context, owner, photo.id) for _ in range(2)]
    chained = submit(context, owner, task_ids[0])
    long_ago = utc_now() - timedelta(seconds=settings.lost_message_s + 1)
    _age(context, [*task_ids, chained], updated_at=long_ago)

    first = resend_lost_messages(context.sessions, broker, settings)
    second = resend_lost_messages(context.sessions, broker, settings)

    assert (first, second) == (2, 0)
    assert (broker.messages_waiting(PHOTO_QUEUE), broker.messages_waiting(VIDEO_QUEUE)) == (2, 0)


def test_queued_requests_whose_messages_are_gone_are_sent_again_once(
    context: WorkerContext, owner: ApiKey, broker: TaskQueue, settings: Settings
) -> None:
    """GIVEN a background request queued long ago whose message the broker does not hold, and one queued
    moments ago whose message it holds
    WHEN the job runs twice
    THEN the old one is sent to its queue once, the new one not at all."""
    with context.sessions() as session:
        old, recent = (
            create_request(
                session, owner=owner, settings=settings, operation="import:backup", task_id=None
            ).id
            for _ in range(2)
        )
    with session_scope(context.sessions) as session:
        long_ago = utc_now() - timedelta(seconds=settings.lost_message_s + 1)
        session.execute(
            update(BackgroundRequest).where(BackgroundRequest.id == old).values(updated_at=long_ago)
        )
    broker.enqueue_request(recent, PHOTO_QUEUE)

    first = resend_lost_messages(context.sessions, broker, settings)
    second = resend_lost_messages(context.sessions, broker, settings)

    assert (first, second) == (1, 0)
    with Connection(embedded_broker_url(settings.broker_url)) as connection:
        messages = connection.SimpleQueue(PHOTO_QUEUE)
        sent = [messages.get(timeout=5).payload[0] for _ in range(2)]
        messages.close()
    assert sent == [[recent], [old]]


def test_tasks_queued_moments_ago_are_left_to_the_broker(
    context: WorkerContext, owner: ApiKey, broker: TaskQueue, settings: Settings, tmp_path: Path
) -> None:
    photo = upload(context, owner, save_image(tmp_path / "photo.png"))
    submit(context, owner, photo.id)

    assert resend_lost_messages(context.sessions, broker, settings) == 0


def test_callbacks_never_tried_or_overdue_are_sent_again_where_they_left_off(
    context: WorkerContext, owner: ApiKey, broker: TaskQueue, settings: Settings, tmp_path: Path
) -> None:
    photo = upload(context, owner, save_image(tmp_path / "photo.png"))
    never, overdue, waiting = (
        submit(context, owner, photo.id, callback_url="https://example.com/hook") for _ in range(3)
    )
    long_ago = utc_now() - timedelta(seconds=settings.lost_message_s + 1)
    retrying_at = long_ago - timedelta(hours=1)
    _age(context, [never, overdue, waiting], status="completed", finished_at=long_ago)
    _age(
        context,
        [overdue],
        callback_delivery={"state": "retrying", "attempts": 3, "at": retrying_at.isoformat()},
    )
    _age(
        context,
        [waiting],
        callback_delivery={"state": "retrying", "attempts": 1, "at": utc_now().isoformat()},
    )

    assert resend_lost_messages(context.sessions, broker, settings) == 2

    with Connection(embedded_broker_url(settings.broker_url)) as connection:
        messages = connection.SimpleQueue(CALLBACK_QUEUE)
        sent = [messages.get(timeout=5).payload for _ in range(2)]
        messages.close()
    assert sorted((args[0], kwargs) for args, kwargs, _ in sent) == sorted(
        [(never, {}), (overdue, {"attempt": 3})]
    )
