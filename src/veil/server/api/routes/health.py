"""Probes and monitoring: `GET /healthz` and `GET /readyz` without an API key; `GET /metrics` with an admin
key or the metrics token."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from veil.core.services.health import check_readiness
from veil.server.api.deps import MetricsReader, SessionDep, SettingsDep, StorageDep
from veil.server.metrics import render_metrics
from veil.server.problems import Problem, problem_responses

__all__ = ["router"]

router = APIRouter(tags=["Health"])


class Alive(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyChecks(BaseModel):
    database: Literal["ok"] = "ok"
    broker: Literal["ok"] = "ok"
    storage: Literal["ok"] = "ok"
    workers: int


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    checks: ReadyChecks


@router.get("/healthz")
def healthz() -> Alive:
    """The process answers HTTP (liveness); it checks nothing else."""
    return Alive()


@router.get("/readyz", responses=problem_responses(503))
def readyz(session: SessionDep, settings: SettingsDep, storage: StorageDep) -> Ready:
    """Ready when the database answers, the broker accepts a connection, storage can be written and a
    worker reported in the last 30 s; otherwise 503, with `errors` naming each check that failed."""
    readiness = check_readiness(session, broker_url=settings.broker_url, storage=storage)
    if readiness.problems:
        failed = ", ".join(sorted(readiness.problems))
        raise Problem(503, f"Not ready: {failed}.", errors=readiness.problems)
    return Ready(checks=ReadyChecks(workers=readiness.workers))


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics."},
        **problem_responses(401, 403, 429),
    },
)
def metrics(session: SessionDep, _: MetricsReader) -> Response:
    """Prometheus metrics for the whole installation, read from the database at each scrape. Send an admin
    key (x-api-key), or the token set in VEIL_METRICS_TOKEN as `Authorization: Bearer <token>`."""
    return Response(render_metrics(session), media_type=CONTENT_TYPE_LATEST)
