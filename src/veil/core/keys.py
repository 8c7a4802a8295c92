"""API keys: made with enough randomness that a plain SHA-256 is a safe way to store them.

The `/v1/keys` API lists, creates and revokes them (admins), and shows a key its own record and usage.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.core.errors import ConflictError, NotFoundError
from veil.core.models import ApiKey, utc_now
from veil.core.schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic, KeyUsageCounts

__all__ = [
    "NewKey",
    "create_api_key",
    "find_api_key",
    "get_key",
    "hash_key",
    "issue_key",
    "key_public",
    "list_keys",
    "revoke_api_key",
    "revoke_key",
]

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


def key_public(record: ApiKey) -> KeyPublic:
    """The API view of a key: no secret, only its prefix; usage counters included."""
    return KeyPublic(
        id=record.id,
        name=record.name,
        prefix=record.prefix,
        is_admin=record.is_admin,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
        usage=KeyUsageCounts(
            files=record.files_processed, bytes=record.bytes_processed, frames=record.frames_processed
        ),
    )


def get_key(session: Session, *, key_id: str) -> KeyPublic:
    """The key `key_id`, revoked or not, as read now (usage counters move while workers run).

    Raises:
        NotFoundError: no such key.
    """
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFoundError("Key", key_id)
    return key_public(record)


def list_keys(session: Session) -> KeysPublic:
    """Every key, revoked ones included, oldest first."""
    records = list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))
    return KeysPublic(count=len(records), results=[key_public(record) for record in records])


def issue_key(session: Session, *, request: KeyCreate) -> KeyCreated:
    """Creates and commits a key; its secrets are in the answer and nowhere else in the clear."""
    new = create_api_key(session, name=request.name, admin=request.is_admin)
    session.commit()
    return KeyCreated(
        key=key_public(new.record), secret=new.secret, callback_secret=new.record.callback_secret
    )


def revoke_key(session: Session, *, caller: ApiKey, key_id: str) -> KeyPublic:
    """Revokes a key (again is harmless) and commits; the caller's own key is refused, so an admin cannot
    lock itself out by mistake.

    Raises:
        NotFoundError: no such key.
        ConflictError: `key_id` is the caller's key.
    """
    if key_id == caller.id:
        raise ConflictError("This is the key you are using; revoke it with another admin key.")
    if not revoke_api_key(session, key_id=key_id):
        raise NotFoundError("Key", key_id)
    session.commit()
    return get_key(session, key_id=key_id)
