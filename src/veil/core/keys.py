"""API keys: made with enough randomness that a plain SHA-256 is a safe way to store them."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.core.models import ApiKey, utc_now

__all__ = ["NewKey", "create_api_key", "find_api_key", "hash_key", "revoke_api_key"]

KEY_PREFIX = "veil_"


@dataclass(frozen=True)
class NewKey:
    """A key as created: `secret` and `callback_secret` are shown once and never stored in the clear
    (the callback secret is kept, because callbacks must be signed with it)."""

    record: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(session: Session, *, name: str, admin: bool = False) -> NewKey:
    """Adds a key to the session and returns it with its secret."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        name=name,
        key_hash=hash_key(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
        is_admin=admin,
        callback_secret=secrets.token_hex(32),
    )
    session.add(record)
    session.flush()
    return NewKey(record, secret)


def find_api_key(session: Session, secret: str) -> ApiKey | None:
    """The live (not revoked) key with this secret, or None."""
    record = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    if record is None or record.revoked_at is not None:
        return None
    return record


def revoke_api_key(session: Session, *, key_id: str) -> bool:
    """Revokes a key; False when there is no such key."""
    record = session.get(ApiKey, key_id)
    if record is None:
        return False
    record.revoked_at = record.revoked_at or utc_now()
    return True
