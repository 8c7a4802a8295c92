"""One request at a time appends to an upload, whichever API process (on whichever host) it reaches.

The lock is a lease in the database (`veil.core.database.leases`) named after the upload, renewed while the
bytes arrive and given up when the request ends. An API process killed mid-request leaves it to expire within
its time to live (`Settings.upload_lock_s`); until then the client's next PATCH answers 409, which TUS
clients try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.leases import release_lease, take_lease
from veil.core.errors import ConflictError

__all__ = ["upload_lock"]


@asynccontextmanager
async def upload_lock(database: Engine | Connection, upload_id: str, *, ttl_s: float) -> AsyncIterator[None]:
    """Holds upload `upload_id`'s lock for the block, taking and renewing it in transactions of its own
    on `database` (a request's session's bind); it lasts `ttl_s` after the last renewal.

    Raises:
        ConflictError: another request holds it.
    """
    sessions = sessionmaker(database if isinstance(database, Engine) else database.engine)
    name, holder = f"upload:{upload_id}", uuid.uuid4().hex
    if not await asyncio.to_thread(take_lease, sessions, name=name, holder=holder, ttl_s=ttl_s):
        raise ConflictError(f"Another request is sending bytes of upload {upload_id}; wait for it.")
    renewing = asyncio.create_task(_renew(sessions, name, holder, ttl_s))
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await asyncio.to_thread(release_lease, sessions, name=name, holder=holder)


async def _renew(sessions: sessionmaker[Session], name: str, holder: str, ttl_s: float) -> None:
    while True:
        await asyncio.sleep(ttl_s / 3)
        await asyncio.to_thread(take_lease, sessions, name=name, holder=holder, ttl_s=ttl_s)
