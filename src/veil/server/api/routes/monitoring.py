"""`GET /v1/monitoring` (admin keys): where the installation's monitoring lives, for the manager's link."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from veil.server.api.deps import AdminKey, SettingsDep
from veil.server.problems import problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/monitoring", tags=["Keys"])


class MonitoringPublic(BaseModel):
    flower_url: str | None = Field(
        description="Celery Flower (`veil flower`), showing workers, queues and tasks; null when "
        "VEIL_FLOWER_URL is not set.",
    )


@router.get("", responses=problem_responses(401, 403, 422, 429))
def read_monitoring(_: AdminKey, settings: SettingsDep) -> MonitoringPublic:
    """Links to the monitoring of workers and queues (admin keys only)."""
    return MonitoringPublic(flower_url=settings.flower_url)
