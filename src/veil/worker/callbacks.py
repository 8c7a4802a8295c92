"""Delivering a finished task to its `callback_url`: one signed POST per attempt, retried with backoff.

The body is the task as `GET /v1/tasks/{id}` shows it. `X-Veil-Signature: t=<unix time>,v1=<hex>` holds
when the attempt was signed and the HMAC-SHA256, under the key's callback secret, of `"{t}."` followed by the
exact body bytes. The time is inside what is signed, so a receiver that refuses old signatures (the README
shows one, with 5 minutes) cannot be fed a recorded delivery again later. How delivery went is kept in
`Task.callback_delivery`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Literal

import httpx
from sqlalchemy import update

from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, Task, utc_now
from veil.core.errors import InvalidInputError
from veil.core.queue import MAX_RETRY_DELAY_S
from veil.core.safety.urls import check_public_url
from veil.core.services.tasks import describe_task
from veil.worker.context import WorkerContext

__all__ = ["SIGNATURE_HEADER", "deliver_callback", "retry_delay_s", "sign"]

SIGNATURE_HEADER = "X-Veil-Signature"

_FIRST_DELAY_S = 2.0
# Besides 5xx: "request timeout" and "too many requests" say the receiver may take it later.
_RETRY_STATUSES = frozenset({408, 429})

log = logging.getLogger(__name__)

State = Literal["delivered", "retrying", "failed", "refused"]


@dataclass(frozen=True)
class _Message:
    url: str
    body: bytes
    secret: str


def sign(body: bytes, secret: str, sent_at: int) -> str:
    """The `X-Veil-Signature` value for `body` sent at `sent_at` (Unix seconds): "t=<sent_at>,v1=" and the
    hex HMAC-SHA256 under `secret` of "<sent_at>." followed by the body."""
    digest = hmac.new(secret.encode(), f"{sent_at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={sent_at},v1={digest}"


def retry_delay_s(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (0 = the first): doubling from 2 s up to 10 min,
    with jitter so receivers that come back are not hit by every retry at once."""
    delay = min(MAX_RETRY_DELAY_S, _FIRST_DELAY_S * 2**attempt)
    return random.uniform(delay / 2, delay)


def deliver_callback(context: WorkerContext, task_id: str, attempt: int = 0) -> float | None:
    """Makes delivery attempt `attempt` (0 = the first) of the task's callback.

    The URL is checked again before each attempt (what a name resolves to can change). A 2xx answer
    delivers; connection errors, timeouts, 5xx, 408 and 429 are tried again up to
    `settings.callback_retries` more times; anything else gives up.

    Returns:
        Seconds to wait before the next attempt, or None when there is nothing more to do.
    """
    message = _message(context, task_id)
    if message is None:
        return None
    try:
        check_public_url(message.url, context.settings.allow_private_callbacks)
    except InvalidInputError as exc:
        reason = "; ".join(text for texts in exc.errors.values() for text in texts)
        _record(context, task_id, "refused", attempt, error=reason)
        return None
    status, error = _post(message, context.settings.callback_timeout_s)
    if status is not None and 200 <= status < 300:
        _record(context, task_id, "delivered", attempt, status=status)
        return None
    retryable = status is None or status >= 500 or status in _RETRY_STATUSES
    if retryable and attempt < context.settings.callback_retries:
        _record(context, task_id, "retrying", attempt, status=status, error=error)
        return retry_delay_s(attempt)
    log.warning(
        "task %s: callback not delivered after %d attempts (%s)", task_id, attempt + 1, error or status
    )
    _record(context, task_id, "failed", attempt, status=status, error=error)
    return None


def _message(context: WorkerContext, task_id: str) -> _Message | None:
    with context.sessions() as session:
        task = session.get(Task, task_id)
        if task is None or not task.callback_url:
            return None
        # Without the delivery record, which changes between attempts: every retry sends the same body.
        document = describe_task(session, task).model_dump(mode="json", exclude={"callback_delivery"})
        secret = session.get_one(ApiKey, task.owner_id).callback_secret
        body = json.dumps(document, separators=(",", ":")).encode()
        return _Message(task.callback_url, body, secret)


def _post(message: _Message, timeout_s: float) -> tuple[int | None, str | None]:
    """(HTTP status, None) for an answer, (None, why) when there was none. Redirects are not followed:
    a redirect could lead to an address the URL check refuses."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"veil/{version('veil')}",
        SIGNATURE_HEADER: sign(message.body, message.secret, int(time.time())),
    }
    try:
        response = httpx.post(message.url, content=message.body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return response.status_code, None


def _record(
    context: WorkerContext,
    task_id: str,
    state: State,
    attempt: int,
    *,
    status: int | None = None,
    error: str | None = None,
) -> None:
    delivery = {
        "state": state,
        "attempts": attempt + 1,
        "response_status": status,
        "error": error,
        "at": utc_now().isoformat(),
    }
    with session_scope(context.sessions) as session:
        # Bookkeeping only: keep updated_at, which tells clients when the task itself last changed.
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(callback_delivery=delivery, updated_at=Task.updated_at)
        )
