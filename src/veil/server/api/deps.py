"""What routes depend on, as `Annotated` aliases: a database session, the caller's key, storage, queue, and
who may read the metrics."""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from veil.core.database.models import ApiKey
from veil.core.queue import TaskQueue
from veil.core.services.keys import find_api_key
from veil.core.settings import Settings
from veil.core.storage import Storage
from veil.server.problems import Problem

__all__ = [
    "AdminKey",
    "CurrentKey",
    "MetricsReader",
    "QueueDep",
    "RateLimiter",
    "SessionDep",
    "SettingsDep",
    "StorageDep",
]


class RateLimiter:
    """Requests per key in a moving window (`settings.rate_limit`, e.g. "600/minute")."""

    def __init__(self, limit: str, storage_uri: str) -> None:
        self.item: RateLimitItem = parse(limit)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def check(self, key_id: str) -> None:
        """Counts one request; raises a 429 Problem with Retry-After when the key is over its limit."""
        if self.limiter.hit(self.item, key_id):
            return
        reset_at = self.limiter.get_window_stats(self.item, key_id).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise Problem(
            429,
            f"Rate limit of {self.item} exceeded for this key; try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


async def _session(request: Request) -> AsyncIterator[Session]:
    """The request's session, made on the event loop: a sync dependency would cost a thread hop to enter
    and another to leave, and making a session does no I/O (it connects when first used). Closing it ends
    any transaction it still holds, a database round trip, so that is done in a thread."""
    factory: sessionmaker[Session] = request.app.state.sessions
    session = factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(_session)]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(_settings)]


async def _storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


StorageDep = Annotated[Storage, Depends(_storage)]


async def _queue(request: Request) -> TaskQueue:
    queue: TaskQueue = request.app.state.queue
    return queue


QueueDep = Annotated[TaskQueue, Depends(_queue)]


def _current_key(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="Your API key.")] = None,
) -> ApiKey:
    if not x_api_key:
        raise Problem(401, "Send your API key in the x-api-key header.")
    # Not the route's session: this runs in one thread and the route in another, and a request waiting for
    # its next thread while it holds a connection can leave the threads ahead of it waiting for one.
    sessions: sessionmaker[Session] = request.app.state.autocommit_sessions
    with sessions() as session:
        key = find_api_key(session, x_api_key)
    if key is None:
        raise Problem(401, "The API key is unknown or revoked.")
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(key.id)
    return key


CurrentKey = Annotated[ApiKey, Depends(_current_key)]


def _admin_key(key: CurrentKey) -> ApiKey:
    if not key.is_admin:
        raise Problem(403, "This needs an admin key.")
    return key


AdminKey = Annotated[ApiKey, Depends(_admin_key)]


def _metrics_reader(
    request: Request,
    settings: SettingsDep,
    authorization: Annotated[
        str | None, Header(description="`Bearer <VEIL_METRICS_TOKEN>`, as Prometheus sends it.")
    ] = None,
    x_api_key: Annotated[str | None, Header(description="An admin key.")] = None,
) -> None:
    if authorization is not None and x_api_key is None:
        if not _is_metrics_token(authorization, settings):
            raise Problem(401, "The bearer token is not the metrics token (VEIL_METRICS_TOKEN).")
        return
    if x_api_key is None:
        raise Problem(
            401, "Send an admin key in the x-api-key header, or the metrics token as `Authorization: Bearer`."
        )
    _admin_key(_current_key(request, x_api_key))


def _is_metrics_token(authorization: str, settings: Settings) -> bool:
    scheme, _, credentials = authorization.partition(" ")
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(credentials.strip().encode(), expected.encode())
    )


MetricsReader = Annotated[None, Depends(_metrics_reader)]
"""An admin key, or the bearer token `settings.metrics_token`: who may read `/metrics`."""
