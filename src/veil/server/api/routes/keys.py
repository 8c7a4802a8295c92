"""The keys API: `GET /v1/keys/me` for any key; `GET /v1/keys`, `POST /v1/keys` and
`DELETE /v1/keys/{id}` (revoke) for admin keys."""

from __future__ import annotations

from fastapi import APIRouter

from veil.core.schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic
from veil.core.services.keys import get_key, issue_key, list_keys, revoke_key
from veil.server.api.deps import AdminKey, CurrentKey, SessionDep, SettingsDep
from veil.server.problems import problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["Keys"])


@router.get("/me", responses=problem_responses(401, 422, 429))
def read_my_key(key: CurrentKey, session: SessionDep) -> KeyPublic:
    """The key you are using, with what the workers processed for it."""
    return get_key(session, key_id=key.id)


@router.get("", responses=problem_responses(401, 403, 422, 429))
def read_keys(_: AdminKey, session: SessionDep) -> KeysPublic:
    """Every key, revoked ones included, with usage (admin keys only)."""
    return list_keys(session)


@router.post("", status_code=201, responses=problem_responses(400, 401, 403, 422, 429))
def create_key(body: KeyCreate, _: AdminKey, session: SessionDep, settings: SettingsDep) -> KeyCreated:
    """A new key (admin keys only); its secrets are shown in this answer only. `file_root` sets the server
    directory its BlurIt-style paths are relative to."""
    return issue_key(session, request=body, settings=settings)


@router.delete("/{key_id}", responses=problem_responses(401, 403, 404, 409, 422, 429))
def revoke(key_id: str, key: AdminKey, session: SessionDep) -> KeyPublic:
    """Revoke a key (admin keys only); it stops working at once. The key you are using answers 409."""
    return revoke_key(session, caller=key, key_id=key_id)
