"""Leases: named locks in the database that expire, for work that must happen in one place at a time
when several processes on several hosts could do it (a scheduler's periodic job, a request appending to
an upload).

A holder takes a lease for a while and may take it again to extend it; anyone may take a lease whose
time is up, so a holder that died frees it by waiting. Taking is one conditional UPDATE, or an INSERT
when there is no row yet: on PostgreSQL and SQLite alike, of two processes taking at once exactly one
wins. Times come from each host's clock; hosts keep them close with NTP.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.connection import session_scope
from veil.core.database.models import Lease, utc_now

__all__ = ["release_lease", "take_lease"]


def take_lease(sessions: sessionmaker[Session], *, name: str, holder: str, ttl_s: float) -> bool:
    """Takes or extends lease `name` for `holder` until `ttl_s` from now; False when someone else holds
    it and its time is not up."""
    now = utc_now()
    until = now + timedelta(seconds=ttl_s)
    with session_scope(sessions) as session:
        taken = session.scalar(
            update(Lease)
            .where(Lease.name == name, or_(Lease.expires_at <= now, Lease.holder == holder))
            .values(holder=holder, expires_at=until)
            .returning(Lease.name)
            .execution_options(synchronize_session=False)
        )
    if taken is not None:
        return True
    try:
        with session_scope(sessions) as session:
            session.add(Lease(name=name, holder=holder, expires_at=until))
    except IntegrityError:  # another process made the row first: it holds the lease
        return False
    return True


def release_lease(sessions: sessionmaker[Session], *, name: str, holder: str) -> None:
    """Gives lease `name` up if `holder` still holds it."""
    with session_scope(sessions) as session:
        session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
