"""The FastAPI application: `create_app()` wires settings, database, storage, queue and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from veil.core.db import create_db_engine, migrate
from veil.core.maintenance import run_maintenance
from veil.core.queue import TaskQueue, create_celery
from veil.core.settings import Settings, get_settings
from veil.core.storage import LocalStorage
from veil.server.api.deps import RateLimiter
from veil.server.api.routes import blurit, files, health, license, tasks
from veil.server.problems import install_problem_handlers

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, queue: TaskQueue | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment). `queue` replaces the Celery broker, for tests
    that check what was enqueued."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate(settings.database_url)
        engine = create_db_engine(settings.database_url)
        app.state.settings = settings
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        app.state.storage = LocalStorage(settings.storage_dir)
        app.state.queue = queue or TaskQueue(create_celery(settings))
        app.state.rate_limiter = RateLimiter(settings.rate_limit, settings.rate_limit_storage)
        maintenance = asyncio.create_task(_maintain(app))
        try:
            yield
        finally:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
            engine.dispose()

    app = FastAPI(
        title="Veil",
        version=version("veil"),
        summary="Self-hosted anonymization of faces and licence plates in photos and videos.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    for module in (files, tasks, blurit, license, health):
        app.include_router(module.router)
    return app


async def _maintain(app: FastAPI) -> None:
    """Every `cleanup_interval_s`: delete what expired and queue again tasks whose worker died."""
    settings: Settings = app.state.settings
    while True:
        try:
            await asyncio.to_thread(
                run_maintenance, app.state.sessions, app.state.storage, app.state.queue, settings
            )
        except Exception:
            log.exception("maintenance pass failed; trying again at the next interval")
        await asyncio.sleep(settings.cleanup_interval_s)
