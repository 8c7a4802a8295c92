"""Numbers about the whole installation, read from the database when asked: tasks by status, how long
finished tasks took, what was processed, and how many workers are alive.

Every process (API servers, workers) writes to the same database, so these are right however many
processes there are; nothing is counted in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Float, case, extract, func, select, type_coerce
from sqlalchemy.orm import Session

from veil.core.database.models import TASK_STATUSES, ApiKey, Task, WorkerBeat, utc_now

__all__ = [
    "DURATION_BUCKETS_S",
    "WORKER_ALIVE_S",
    "Durations",
    "Totals",
    "processed_totals",
    "task_counts",
    "task_durations",
    "workers_alive",
]

# A worker refreshes its beat every few seconds; one silent for this long is taken for dead.
WORKER_ALIVE_S = 30.0
# Photos take about a second, videos minutes to hours.
DURATION_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


@dataclass(frozen=True)
class Durations:
    """Run times of finished tasks (finished_at - started_at), as a cumulative histogram.

    Attributes:
        buckets: (upper bound in seconds, tasks that took at most that long), for each DURATION_BUCKETS_S.
        count: finished tasks that had started.
        sum_s: their run times added up, in seconds.
    """

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum_s: float


@dataclass(frozen=True)
class Totals:
    """What the workers processed, over every key."""

    files: int
    bytes: int
    frames: int


def task_counts(session: Session) -> dict[str, int]:
    """Tasks per status, every status present (0 when none)."""
    rows = session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
    found = {status: count for status, count in rows}
    return {status: found.get(status, 0) for status in TASK_STATUSES}


def _run_time_s(dialect: str) -> ColumnElement[float]:
    # SQLite has no interval type; julianday() gives fractional days with sub-millisecond precision here.
    if dialect == "sqlite":
        return (func.julianday(Task.finished_at) - func.julianday(Task.started_at)) * 86400.0
    return type_coerce(extract("epoch", Task.finished_at - Task.started_at), Float)


def task_durations(session: Session) -> Durations:
    """The histogram of run times, computed by the database in one query."""
    run_time = _run_time_s(session.get_bind().dialect.name)
    bucket_columns = [
        func.coalesce(func.sum(case((run_time <= bound, 1), else_=0)), 0) for bound in DURATION_BUCKETS_S
    ]
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(run_time), 0.0), *bucket_columns).where(
            Task.started_at.is_not(None), Task.finished_at.is_not(None)
        )
    ).one()
    count, sum_s, *cumulative = row
    return Durations(
        buckets=tuple(zip(DURATION_BUCKETS_S, (int(n) for n in cumulative), strict=True)),
        count=int(count),
        sum_s=float(sum_s),
    )


def processed_totals(session: Session) -> Totals:
    """The usage counters of every key (revoked ones included) added up."""
    files, size, frames = session.execute(
        select(
            func.coalesce(func.sum(ApiKey.files_processed), 0),
            func.coalesce(func.sum(ApiKey.bytes_processed), 0),
            func.coalesce(func.sum(ApiKey.frames_processed), 0),
        )
    ).one()
    return Totals(files=int(files), bytes=int(size), frames=int(frames))


def workers_alive(session: Session, *, now: datetime | None = None) -> int:
    """Workers whose beat is at most WORKER_ALIVE_S old."""
    since = (now or utc_now()) - timedelta(seconds=WORKER_ALIVE_S)
    return (
        session.scalar(select(func.count()).select_from(WorkerBeat).where(WorkerBeat.seen_at >= since)) or 0
    )
