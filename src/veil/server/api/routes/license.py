"""`GET /api/license`: Veil's version, the licences of Veil and its models, and usage per key."""

from __future__ import annotations

from fastapi import APIRouter

from veil.core.services.usage import LicenseReport, license_report
from veil.server.api.deps import CurrentKey, SessionDep
from veil.server.problems import problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["License"])


@router.get("/license", responses=problem_responses(401, 422, 429))
def read_license(key: CurrentKey, session: SessionDep) -> LicenseReport:
    """Usage counters cover the caller's key; an admin key sees every key's."""
    return license_report(session, caller=key)
