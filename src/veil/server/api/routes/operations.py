"""`GET /v1/operations`: the parameters of every operation as JSON Schema, for forms that show defaults."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from veil.core.parameters import OPERATIONS

__all__ = ["router"]

router = APIRouter(prefix="/v1/operations", tags=["Tasks"])


@router.get("")
def read_operations() -> dict[str, dict[str, Any]]:
    """Each operation's `parameters` as a JSON Schema (defaults, enums, bounds); no API key needed."""
    return {name: model.model_json_schema() for name, model in OPERATIONS.items()}
