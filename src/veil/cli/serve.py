"""`veil serve`, `veil worker` and `veil scheduler`: the task server on one machine, or its three roles
on as many machines as needed.

`veil serve` brings the database up to date, makes an admin key on a fresh installation, queues again the
tasks a previous run left queued, starts the workers and restarts any that dies, then serves the API with
uvicorn in the foreground, running the periodic jobs too. SIGINT or SIGTERM stops the API, then the
workers. `veil serve --role api` only migrates, makes the first key and serves HTTP: any number of them,
with `veil worker` processes on any hosts and `veil scheduler` for the periodic jobs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from types import FrameType
from typing import Annotated

import typer
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from veil.cli.installation import announce_installation, require_database
from veil.cli.logs import configure_logging
from veil.core.broker import embedded_broker_url
from veil.core.database.connection import create_db_engine, migrate, session_scope
from veil.core.database.models import ApiKey
from veil.core.queue import CALLBACK_QUEUE, TASK_QUEUES, TaskQueue, create_celery
from veil.core.scheduler import Scheduler, periodic_jobs
from veil.core.services.keys import create_api_key
from veil.core.services.maintenance import recover_tasks
from veil.core.settings import get_settings
from veil.core.storage import open_storage
from veil.worker.celery_app import create_worker_app

__all__ = ["Role", "WorkerSupervisor", "scheduler", "serve", "worker"]

log = logging.getLogger(__name__)


class Role(StrEnum):
    all = "all"
    api = "api"


APP_FACTORIES = {Role.all: "veil.server.main:create_app", Role.api: "veil.server.main:create_api_app"}
STOP_GRACE_S = 10.0
"""How long a worker may take to finish its shutdown before it is killed; tasks are acknowledged only
when done, so a killed worker's task runs again elsewhere."""
POLL_S = 0.25
MAX_RESTART_DELAY_S = 30.0
STABLE_AFTER_S = 10.0
"""A worker that ran this long counts as healthy: its next restart is immediate again."""


class _Stop(Exception):
    """Raised in the main thread by the first SIGINT/SIGTERM, to unwind into the shutdown."""


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


class WorkerSupervisor:
    """Keeps `count` worker processes running: a worker that exits is started again, after a delay that
    grows while it keeps dying right after starting (a broken configuration should not spin)."""

    def __init__(self, count: int, command: list[str]) -> None:
        self._slots = [_Slot(index) for index in range(count)]
        self._command = command
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        for slot in self._slots:
            self._launch(slot)
        self._thread.start()

    def stop(self, force: threading.Event) -> None:
        """Asks every worker to shut down, and kills those still running after the grace period or as
        soon as `force` is set (a second Ctrl-C)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        running = [slot.process for slot in self._slots if slot.process and slot.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        while any(p.poll() is None for p in running) and time.monotonic() < deadline and not force.is_set():
            time.sleep(0.05)
        for process in running:
            if process.poll() is None:
                log.warning("worker did not stop in time; killing it", extra={"pid": process.pid})
            _kill_group(process)
        log.info("workers stopped", extra={"count": len(running)})

    def _launch(self, slot: _Slot) -> None:
        # A process group of its own: Ctrl-C in a terminal reaches only `veil serve`, which then stops
        # the workers itself instead of racing them to a restart.
        slot.process = subprocess.Popen(self._command, process_group=0)
        slot.started_at = time.monotonic()
        log.info("worker started", extra={"slot": slot.index, "pid": slot.process.pid})

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_S):
            now = time.monotonic()
            for slot in self._slots:
                self._check(slot, now)

    def _check(self, slot: _Slot, now: float) -> None:
        assert slot.process is not None
        returncode = slot.process.poll()
        if returncode is None:
            return
        if slot.restart_at is None:
            lived = now - slot.started_at
            slot.quick_exits = 0 if lived >= STABLE_AFTER_S else slot.quick_exits + 1
            delay = min(MAX_RESTART_DELAY_S, 0.5 * 2**slot.quick_exits) if slot.quick_exits > 1 else 0.0
            slot.restart_at = now + delay
            details = {
                "slot": slot.index,
                "pid": slot.process.pid,
                "returncode": returncode,
                "delay_s": delay,
            }
            log.warning("worker exited; restarting it", extra=details)
            _kill_group(slot.process)
        if now >= slot.restart_at:
            slot.restart_at = None
            self._launch(slot)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kills a worker and whatever is left of its process group: pool children of a worker that was
    killed would otherwise finish their task alongside the retry."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _bootstrap_admin_key(sessions: sessionmaker[Session]) -> str | None:
    """On a database with no key at all, creates an admin key named "admin" and returns its secret."""
    with session_scope(sessions) as session:
        if session.scalar(select(func.count()).select_from(ApiKey)):
            return None
        return create_api_key(session, name="admin", admin=True).secret


def _announce_admin_key(secret: str) -> None:
    typer.echo(
        "\nNo API key existed yet, so an admin key named 'admin' was created.\n"
        "It is shown only this once (only its hash is stored); keep it somewhere safe:\n\n"
        f"    {secret}\n\n"
        "Send it in the x-api-key header, or for the `veil task` commands:\n"
        f"    export VEIL_API_KEY={secret}\n"
        "Make more keys with `veil apikey create --name NAME`.\n"
    )


def _prepare_database(database_url: str, broker_queue: TaskQueue | None) -> None:
    """Migrates, makes the first admin key if needed, and queues again tasks left queued (unless
    `broker_queue` is None: an API process among several leaves that to the scheduler)."""
    migrate(database_url)
    engine = create_db_engine(database_url)
    try:
        sessions = sessionmaker(engine, expire_on_commit=False)
        secret = _bootstrap_admin_key(sessions)
        if secret is not None:
            _announce_admin_key(secret)
        if broker_queue is not None:
            requeued = recover_tasks(sessions, broker_queue)
            log.info("queued tasks recovered", extra={"count": requeued})
    finally:
        engine.dispose()


def _install_stop_handlers(force: threading.Event) -> None:
    """The first SIGINT/SIGTERM unwinds the main thread into the shutdown; another forces it.

    uvicorn replaces these handlers while it serves and, once it has shut down, raises the signal it
    caught again, which lands here and starts stopping the workers.
    """
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            force.set()
            return
        stopping.set()
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        raise _Stop

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: VEIL_HOST, else 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: VEIL_PORT, else 8000).", min=0, max=65535)
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(metavar="N", help="Worker processes to start (default: VEIL_WORKERS, else 1).", min=0),
    ] = None,
    role: Annotated[
        Role,
        typer.Option(
            help="all: API, workers and periodic jobs on this machine. api: HTTP only, for several "
            "machines (run `veil worker` and `veil scheduler` beside it)."
        ),
    ] = Role.all,
) -> None:
    """Run the task server: HTTP API in the foreground, plus supervised worker processes."""
    configure_logging()
    settings = get_settings()
    announce_installation(settings)
    if role is Role.api and workers:
        raise typer.BadParameter(
            "an API process starts no workers; run `veil worker`", param_hint="--workers"
        )
    force = threading.Event()
    _install_stop_handlers(force)
    count = settings.workers if workers is None else workers
    command = [sys.executable, "-m", "veil.cli.app", "worker", "--parent-pid", str(os.getpid())]
    supervisor = WorkerSupervisor(0 if role is Role.api else count, command)
    try:
        _prepare_database(
            settings.database_url, TaskQueue(create_celery(settings)) if role is Role.all else None
        )
        supervisor.start()
        config = uvicorn.Config(
            APP_FACTORIES[role],
            factory=True,
            host=host or settings.host,
            port=settings.port if port is None else port,
            log_config=None,
            ws="none",
        )
        uvicorn.Server(config).run()
    except _Stop:
        pass
    finally:
        supervisor.stop(force)


def _stop_when_orphaned(parent_pid: int) -> None:
    """Shuts this worker down (as SIGTERM would) once the `veil serve` that started it is gone, so a
    server killed with SIGKILL leaves no workers behind."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        log.warning("veil serve is gone; stopping this worker", extra={"parent_pid": parent_pid})
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _queue_names(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(TASK_QUEUES))
    if not names or unknown:
        raise typer.BadParameter(
            f"name queues among {', '.join(TASK_QUEUES)}, separated by commas"
            + (f"; not {', '.join(unknown)}" if unknown else ""),
            param_hint="--queues",
        )
    return list(dict.fromkeys(names))


def worker(
    concurrency: Annotated[
        int, typer.Option(metavar="N", min=1, help="Tasks run at once, each in a child process.")
    ] = 1,
    queues: Annotated[
        str,
        typer.Option(
            metavar="NAMES",
            help="The queues to take tasks from, among photo, video and gpu; callbacks are always taken.",
        ),
    ] = ",".join(TASK_QUEUES),
    parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run a worker in the foreground: it takes tasks from the broker and runs them. It needs only the
    database, broker and storage settings, so it can run on any host."""
    configure_logging()
    settings = get_settings()
    names = _queue_names(queues)
    if parent_pid is None:
        announce_installation(settings)  # `veil serve` said it already for the workers it starts
        require_database(settings)  # and made the database first
    else:
        _stop_when_orphaned(parent_pid)
    embedded = embedded_broker_url(settings.broker_url) != settings.broker_url
    create_worker_app(settings).worker_main(
        [
            "worker",
            # prefork even for one task at a time: only a child process can be stopped at the time limit.
            "--pool=prefork",
            f"--concurrency={concurrency}",
            f"--queues={','.join([*names, CALLBACK_QUEUE])}",
            # The SQLAlchemy broker has no fanout exchange, which gossip, mingle and heartbeat need; on
            # other brokers the heartbeat shows the worker in Flower, and gossip and mingle are not used.
            "--without-gossip",
            "--without-mingle",
            *(["--without-heartbeat"] if embedded else ["--task-events"]),
            "--loglevel=INFO",
            "-n",
            f"veil-worker-{os.getpid()}@%h",
        ]
    )


def scheduler() -> None:
    """Run the periodic jobs in the foreground: expiry and clean-up, queueing again the tasks of dead
    workers, and sending again what the broker lost. Two or more may run (on several hosts): each job
    still runs once per interval (VEIL_CLEANUP_INTERVAL_S)."""
    configure_logging()
    settings = get_settings()
    announce_installation(settings)
    require_database(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    engine = create_db_engine(settings.database_url)
    try:
        sessions = sessionmaker(engine, expire_on_commit=False)
        jobs = periodic_jobs(sessions, open_storage(settings), TaskQueue(create_celery(settings)), settings)
        log.info("scheduler started", extra={"interval_s": settings.cleanup_interval_s})
        Scheduler(sessions, jobs, interval_s=settings.cleanup_interval_s).run_until(stop)
    finally:
        engine.dispose()
    log.info("scheduler stopped")
