"""Bounds on request bodies, checked before any route reads one.

A `Content-Length` that is not one non-negative decimal number answers 400. A body that is not a file upload
(JSON, or anything else a route would parse in memory) answers 413 once it passes `max_bytes`, whether its
`Content-Length` says so or the streamed bytes do: FastAPI reads such a body whole before validating it,
so without a bound one request could fill the server's memory. File uploads (multipart forms, TUS chunks)
stream to storage under their own limit (`max_upload_bytes`) and pass through untouched, but only to a route
that declares that body type in its API document: any other route would read an upload-typed body whole
too, so there the same 413 comes once the body passes `max_bytes`. The route is known only after routing,
so that check is made as the body is read.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veil.server.problems import problem_response, problem_responses

__all__ = ["UPLOAD_MEDIA_TYPES", "BodyLimitMiddleware", "document_body_limit"]

UPLOAD_MEDIA_TYPES = frozenset({"multipart/form-data", "application/offset+octet-stream"})
"""Bodies streamed to storage as they arrive, bounded by `max_upload_bytes` instead."""


class BodyLimitMiddleware:
    """Answers 400 for an unusable Content-Length and 413 for a non-upload body over `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            declared = declared_length(headers.getlist("content-length"))
        except ValueError as exc:
            await problem_response(400, str(exc))(scope, receive, send)
            return
        media_type = _media_type(headers)
        if media_type in UPLOAD_MEDIA_TYPES:
            await self.app(scope, self._bounded_unless_streamed(scope, receive, media_type), send)
            return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = await _read_body(receive, self.max_bytes)
        if body is None:
            await self._too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(413, self._too_large_detail())(scope, receive, send)

    def _too_large_detail(self) -> str:
        return (
            f"The request body is larger than the limit of {self.max_bytes} bytes for JSON; "
            "send media as a file upload."
        )

    def _bounded_unless_streamed(self, scope: Scope, receive: Receive, media_type: str) -> Receive:
        """A `receive` for an upload-typed body: untouched when the route declares that type, otherwise
        raising 413 once the body passes `max_bytes` (FastAPI passes an HTTPException from reading on)."""
        size = 0

        async def bounded() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request" and not _declares_body(scope.get("route"), media_type):
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    raise HTTPException(413, self._too_large_detail())
            return message

        return bounded


def document_body_limit(document: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """Adds the 413 answer to every operation of the OpenAPI `document` that takes a body other than a
    file upload; returns the document."""
    too_large = problem_responses(413)[413]
    too_large["description"] = f"The body is larger than {max_bytes} bytes (VEIL_MAX_JSON_BYTES)."
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue  # a path's shared "parameters"
            content = operation.get("requestBody", {}).get("content", {})
            if set(content) - UPLOAD_MEDIA_TYPES:
                operation["responses"].setdefault("413", too_large)
    return document


def declared_length(values: list[str]) -> int | None:
    """The body size the Content-Length header(s) declare; None without one.

    Raises:
        ValueError: a value that is not a non-negative decimal number, or values that disagree.
    """
    parts = {part.strip() for value in values for part in value.split(",")}
    if not parts:
        return None
    if len(parts) > 1 or not all(part.isascii() and part.isdigit() for part in parts):
        shown = ", ".join(sorted(parts))
        raise ValueError(f"Content-Length must be one non-negative number of bytes, not {shown!r}.")
    return int(parts.pop())


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _declares_body(route: object, media_type: str) -> bool:
    """Whether `route` (the one routing chose; None before routing or for a non-API route) lists
    `media_type` as its request body in its API document."""
    extra = getattr(route, "openapi_extra", None) or {}
    return media_type in extra.get("requestBody", {}).get("content", {})


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The whole body, or None as soon as it passes `max_bytes`. A client gone mid-body ends it early; the
    route then sees what arrived, and its answer goes nowhere."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the route `body` in one message, then whatever the client sends next (the
    disconnect that streaming routes wait for)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
