"""Live task updates: what changed in a key's tasks since the last look, for `GET /v1/tasks/events`."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.listing import visible_to
from veil.core.database.models import ApiKey, Task, utc_now
from veil.core.schemas import TaskPublic
from veil.core.services.tasks import describe_task

__all__ = ["FIRST_LOOK", "TaskWatcher"]

FIRST_LOOK = timedelta(minutes=1)
"""The first look reports tasks updated this recently."""

_OVERLAP = timedelta(seconds=10)
"""Each look reads this far back again: a transaction may commit an `updated_at` taken a little before
the previous look. What was already sent with the same `updated_at` is not sent twice."""

_BATCH = 200


class TaskWatcher:
    """Remembers what one client was sent; `look()` returns the tasks of `owner` updated since."""

    def __init__(self, sessions: sessionmaker[Session], owner: ApiKey) -> None:
        self.sessions = sessions
        self.owner = owner
        self.since: datetime = utc_now() - FIRST_LOOK
        self.sent: dict[str, datetime] = {}

    def look(self) -> list[TaskPublic] | None:
        """The owner's `/v1` tasks whose `updated_at` differs from what was last sent, oldest change first;
        None once the owner's key is revoked. Blocking (database); run it in a thread from async code."""
        now = utc_now()
        query = (
            select(Task)
            .where(visible_to(self.owner, Task.owner_id), Task.api == "v1", Task.updated_at >= self.since)
            .order_by(Task.updated_at, Task.id)
            .limit(_BATCH)
        )
        with self.sessions() as session:
            key = session.get(ApiKey, self.owner.id)
            if key is None or key.revoked_at is not None:
                return None
            changed = [task for task in session.scalars(query) if self.sent.get(task.id) != task.updated_at]
            described = [describe_task(session, task) for task in changed]
        for task in changed:
            self.sent[task.id] = task.updated_at
        if len(changed) < _BATCH:
            self.since = now - _OVERLAP
        else:  # a backlog: carry on from the last one sent
            self.since = changed[-1].updated_at
        self.sent = {task_id: at for task_id, at in self.sent.items() if at >= self.since}
        return described
