"""API keys: made with enough randomness that a plain SHA-256 is a safe way to store them.

The `/v1/keys` API lists, creates and revokes them (admins), and shows a key its own record and usage.
Each key has its own file root for BlurIt-style paths (`key_file_root`), so no key reaches another's files.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from veil.core.database.models import ApiKey, utc_now
from veil.core.errors import ConflictError, InvalidInputError, NotFoundError
from veil.core.safety.paths import FileRoot
from veil.core.schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic, KeyUsageCounts
from veil.core.settings import Settings

__all__ = [
    "NewKey",
    "checked_file_root",
    "create_api_key",
    "find_api_key",
    "get_key",
    "hash_key",
    "issue_key",
    "key_file_root",
    "key_public",
    "list_keys",
    "revoke_api_key",
    "revoke_key",
]

KEY_PREFIX = "veil_"

_BY_HASH = select(ApiKey).where(ApiKey.key_hash == bindparam("key_hash"))
"""The query every request makes, built once."""


@dataclass(frozen=True)
class NewKey:
    """A key as created: `secret` and `callback_secret` are shown once and never stored in the clear
    (the callback secret is kept, because callbacks must be signed with it)."""

    record: ApiKey
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    session: Session, *, name: str, admin: bool = False, file_root: str | None = None
) -> NewKey:
    """Adds a key to the session and returns it with its secret; `file_root` as `checked_file_root` gives
    it, or None for the default."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        name=name,
        key_hash=hash_key(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
        is_admin=admin,
        file_root=file_root,
        callback_secret=secrets.token_hex(32),
    )
    session.add(record)
    session.flush()
    return NewKey(record, secret)


def key_file_root(key: ApiKey, file_root: Path) -> FileRoot:
    """The directory `key`'s BlurIt paths are relative to: the one an operator set for it, else the whole
    `file_root` for an admin key, else the key's own folder `<id>` below it. The default ones are made when
    first needed; a set one is not, since a missing one is more likely a disk not mounted."""
    if key.file_root is not None:
        return FileRoot(Path(key.file_root))
    return FileRoot(file_root if key.is_admin else file_root / key.id, create=True)


def checked_file_root(raw: str, settings: Settings) -> str:
    """`raw` as a key's file root: an existing directory, given as an absolute path, stored resolved. It may
    lie outside the server's file root (an operator's choice, such as /srv/dashcam), but must not hold the
    data directory (the database) nor lie in it outside the file root (work in progress of every key), nor
    overlap the storage directory (every key's uploads), nor reach another key's own folder: it may not
    hold the file root, nor lie in a `key_...` folder below it.

    Raises:
        InvalidInputError: on `file_root`, saying why.
    """
    problem = _file_root_problem(raw, settings)
    if problem is not None:
        raise InvalidInputError({"file_root": [problem]})
    return str(Path(raw).resolve())


def _file_root_problem(raw: str, settings: Settings) -> str | None:
    try:
        raw.encode()
    except UnicodeEncodeError:
        return "is not a usable path"
    if "\x00" in raw:
        return "is not a usable path"
    if not Path(raw).is_absolute():
        return "give an absolute path"
    path = Path(raw).resolve()
    if not os.path.isdir(path):  # False for any error, such as a name too long
        return f"{path} is not a directory on the server; create it first"
    if path == settings.data_dir or path in settings.data_dir.parents:
        return f"{path} holds the data directory {settings.data_dir} (the database)"
    storage = settings.storage_dir
    if path == storage or storage in path.parents or path in storage.parents:
        return f"{path} overlaps the storage directory {storage}, which holds every key's uploads"
    return _other_keys_problem(path, settings)


def _other_keys_problem(path: Path, settings: Settings) -> str | None:
    """Why `path` would reach what belongs to other keys: their own folders or the work in progress."""
    file_root, data_dir = settings.file_root_dir, settings.data_dir
    if path == file_root or path in file_root.parents:
        return f"{path} holds the file root {file_root}, where each key has its own folder"
    in_file_root = file_root in path.parents
    # Of the data directory, only the file root (where it lies inside) is for keys' files.
    if data_dir in path.parents and not (in_file_root and data_dir in file_root.parents):
        return f"{path} is in the data directory {data_dir}, which holds every key's work in progress"
    if in_file_root and (top := path.relative_to(file_root).parts[0]).startswith("key_"):
        # named by a key id (`ApiKey.id`), now or for a key made later
        return f"{path} is in {file_root / top}, a key's own folder"
    return None


def find_api_key(session: Session, secret: str) -> ApiKey | None:
    """The live (not revoked) key with this secret, or None."""
    record = session.scalar(_BY_HASH, {"key_hash": hash_key(secret)})
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
        file_root=record.file_root,
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


def issue_key(session: Session, *, request: KeyCreate, settings: Settings) -> KeyCreated:
    """Creates and commits a key; its secrets are in the answer and nowhere else in the clear.

    Raises:
        InvalidInputError: on `file_root`, as `checked_file_root` says.
    """
    file_root = None if request.file_root is None else checked_file_root(request.file_root, settings)
    new = create_api_key(session, name=request.name, admin=request.is_admin, file_root=file_root)
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
