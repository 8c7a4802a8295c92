"""The FastAPI application: `create_app()` wires settings, database, storage, queue and routes.

`create_app()` is the one-machine server, which also runs the periodic jobs; `create_api_app()` serves
HTTP only (`veil serve --role api`), leaving those jobs to `veil scheduler`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import sessionmaker

from veil.core.database.connection import create_db_engine, migrate
from veil.core.queue import TaskQueue, create_celery
from veil.core.scheduler import Scheduler, periodic_jobs
from veil.core.settings import Settings, get_settings
from veil.core.storage import open_storage
from veil.server.api.deps import RateLimiter
from veil.server.api.routes import (
    blurit,
    files,
    health,
    keys,
    license,
    monitoring,
    operations,
    requests,
    task_streams,
    tasks,
    uploads,
)
from veil.server.body_limit import BodyLimitMiddleware, document_body_limit
from veil.server.docs import install_docs
from veil.server.problems import Problem, install_problem_handlers

__all__ = ["create_api_app", "create_app"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
"""The manager web app (package data): `/` serves its index.html, `/app/...` the rest."""


def create_api_app() -> FastAPI:
    """The API for the environment's settings, without the periodic jobs."""
    return create_app(run_jobs=False)


def create_app(
    settings: Settings | None = None, queue: TaskQueue | None = None, *, run_jobs: bool = True
) -> FastAPI:
    """The API for `settings` (default: from the environment). `queue` replaces the Celery broker, for tests
    that check what was enqueued. `run_jobs`: run expiry, requeue and re-sending in this process."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(settings.database_url)
        engine = create_db_engine(settings.database_url)
        app.state.settings = settings
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        # For the key each request is made with: one read, which needs no transaction (no BEGIN, no
        # ROLLBACK), and whose connection goes back to the pool as soon as it is read.
        app.state.autocommit_sessions = sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))
        app.state.storage = open_storage(settings)
        app.state.queue = queue or TaskQueue(create_celery(settings))
        app.state.rate_limiter = RateLimiter(settings.rate_limit, settings.rate_limit_storage)
        stop = threading.Event()
        jobs = asyncio.create_task(_run_periodic_jobs(app, stop)) if run_jobs else None
        try:
            yield
        finally:
            stop.set()
            if jobs is not None:
                await jobs
            engine.dispose()

    app = FastAPI(
        title="Veil",
        version=version("veil"),
        summary="Self-hosted anonymization of faces and licence plates in photos and videos.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from installed files rather than a CDN
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_json_bytes)
    _document_body_limit(app, settings.max_json_bytes)
    # task_streams before tasks: its fixed paths (/v1/tasks/events) would otherwise match /v1/tasks/{id}.
    for module in (
        files,
        uploads,
        task_streams,
        tasks,
        operations,
        requests,
        keys,
        monitoring,
        blurit,
        license,
        health,
    ):
        app.include_router(module.router)
    _serve_web_app(app)
    install_docs(app)
    return app


def _document_body_limit(app: FastAPI, max_bytes: int) -> None:
    """The API document lists the 413 that BodyLimitMiddleware answers, which no route declares."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return document_body_limit(build(), max_bytes)

    app.openapi = openapi  # type: ignore[method-assign]


def _serve_web_app(app: FastAPI) -> None:
    """The manager: `GET /` answers its page, `/app/...` its scripts and styles; neither is in the API
    document."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        page = WEB_DIR / "index.html"
        if not page.is_file():
            raise Problem(404, "The web app is not installed with this server.")
        return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/app", StaticFiles(directory=WEB_DIR, check_dir=False), name="app")


async def _run_periodic_jobs(app: FastAPI, stop: threading.Event) -> None:
    """The scheduler's loop, in a thread of this process until `stop` is set."""
    settings: Settings = app.state.settings
    jobs = periodic_jobs(app.state.sessions, app.state.storage, app.state.queue, settings)
    scheduler = Scheduler(app.state.sessions, jobs, interval_s=settings.cleanup_interval_s)
    await asyncio.to_thread(scheduler.run_until, stop)
