"""The periodic jobs and what runs them: once per interval across every process that may run them.

`veil scheduler` runs them on its own (any number of schedulers, on any hosts); `veil serve` with no role
runs them inside its API process, as one machine always did. Each job holds a lease named after it for
one interval: whoever takes the expired lease first runs the job, the others find it held and wait, so
two schedulers never run a job twice in one interval, and one that dies leaves the job to the others.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.leases import take_lease
from veil.core.queue import TaskQueue
from veil.core.services.maintenance import resend_lost_messages, run_maintenance
from veil.core.settings import Settings
from veil.core.storage import Storage

__all__ = ["PeriodicJob", "Scheduler", "periodic_jobs"]

MAX_TICK_S = 1.0
"""How often a scheduler looks for a job whose lease expired, at most."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    run: Callable[[], object]


def periodic_jobs(
    sessions: sessionmaker[Session], storage: Storage, queue: TaskQueue, settings: Settings
) -> list[PeriodicJob]:
    """Expiry, clean-up and stale-task requeue (`maintenance`); re-sending lost tasks, requests and callbacks
    (`resend`)."""
    return [
        PeriodicJob("maintenance", partial(run_maintenance, sessions, storage, queue, settings)),
        PeriodicJob("resend", partial(resend_lost_messages, sessions, queue, settings)),
    ]


class Scheduler:
    """Runs each job at most once per `interval_s` among all schedulers sharing the database."""

    def __init__(
        self, sessions: sessionmaker[Session], jobs: Sequence[PeriodicJob], *, interval_s: float
    ) -> None:
        self._sessions = sessions
        self._jobs = jobs
        self._interval_s = interval_s

    def run_due(self) -> list[str]:
        """Runs the jobs whose lease this call takes; returns their names. A job that fails is logged and
        left to the next interval."""
        ran = []
        for job in self._jobs:
            # A new holder for every try: a lease is taken only once expired, never extended, so the
            # scheduler that ran a job does not run it again before the interval is up.
            holder = f"{job.name}:{uuid.uuid4().hex}"
            if not take_lease(self._sessions, name=f"job:{job.name}", holder=holder, ttl_s=self._interval_s):
                continue
            ran.append(job.name)
            log.info("periodic job started", extra={"job": job.name})
            try:
                job.run()
            except Exception:
                log.exception("periodic job %s failed; trying again at the next interval", job.name)
        return ran

    def run_until(self, stop: threading.Event) -> None:
        """Looks for due jobs until `stop` is set."""
        tick_s = min(MAX_TICK_S, self._interval_s / 4)
        while not stop.is_set():
            try:
                self.run_due()
            except Exception:  # the database is away: look again at the next tick
                log.exception("scheduler could not take its leases")
            stop.wait(tick_s)
