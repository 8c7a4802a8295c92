"""Every error answer is RFC 9457 `application/problem+json`: type, title, status, detail, and for 422 the
offending fields in `errors` ({field: [message, ...]}), as in the scan-documents API."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from veil.core.errors import InvalidInputError, NotFoundError, ServiceError, UnsupportedMediaTypeError
from veil.core.safety.paths import PathOutsideRootError
from veil.core.storage import StorageFullError, StorageUnavailableError, UploadTooLargeError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Problem",
    "ProblemDetails",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    422: "Validation Error",
    429: "Rate Limit Exceeded",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


class Problem(Exception):
    """An error to answer with: raise it from a route or service; the handler writes the response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


class ProblemDetails(BaseModel):
    """The body of every error answer, for the OpenAPI document (the handlers below write it)."""

    type: str = Field(description="A URN naming the kind of problem, e.g. urn:veil:problem:not-found.")
    title: str
    status: int
    detail: str
    errors: dict[str, list[str]] | None = Field(
        default=None, description="Validation errors: the offending fields, each with its messages."
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status documented as `application/problem+json` only (a `model=`
    entry would also list application/json, which these answers never are)."""
    schema = ProblemDetails.model_json_schema()
    return {
        status: {
            "description": _TITLES.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
        for status in statuses
    }


def problem_type(status: int) -> str:
    slug = _TITLES.get(status, "Error").lower().replace(" ", "-")
    return f"urn:veil:problem:{slug}"


def problem_response(
    status: int,
    detail: str,
    *,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type(status),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def validation_errors(exc: RequestValidationError) -> dict[str, list[str]]:
    """pydantic's error list as {dotted.field: [message, ...]}; the location kind (body, query) is dropped.
    A body that is not JSON at all is reported under `body`, with where the syntax breaks."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            errors.setdefault("body", []).append(json_syntax_error(error, exc.body))
            continue
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in {"body", "query", "path", "header", "cookie"}:
            location = location[1:]
        errors.setdefault(".".join(location) or "request", []).append(str(error.get("msg", "invalid")))
    return errors


def json_syntax_error(error: Any, document: Any) -> str:
    """What is wrong in a body that does not parse as JSON, and where: FastAPI puts the character offset
    where parsing stopped in the error's location ("body", 26), which is no field name."""
    reason = str(error.get("ctx", {}).get("error", "not valid JSON"))
    location = error.get("loc", ())
    offset = location[-1] if location and isinstance(location[-1], int) else None
    if offset is None or not isinstance(document, str):
        return f"The body is not valid JSON: {reason}."
    line = document.count("\n", 0, offset) + 1
    column = offset - (document.rfind("\n", 0, offset) + 1) + 1
    return f"The body is not valid JSON: {reason} at line {line}, column {column} (character {offset})."


def unreadable_body(cause: BaseException | None, content_encoding: str) -> str | None:
    """Why a body FastAPI could not parse (its 400 says only "There was an error parsing the body", raised
    from the cause) is no JSON a route can read; None for other causes."""
    if isinstance(cause, RecursionError):
        return "The body nests arrays and objects too deeply to be read; flatten it."
    if not isinstance(cause, UnicodeDecodeError):
        return None
    if content_encoding.strip().lower() != "identity":
        return f"The body is encoded ({content_encoding}); send it uncompressed, as UTF-8 JSON."
    byte = cause.object[cause.start]
    return f"The body is not UTF-8 text (byte {byte:#04x} at {cause.start}); send UTF-8 JSON."


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path. Starlette's own 405 names only the first route that
    matched the path, so GET and POST on /v1/tasks would each hide the other."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc)
        fields = ", ".join(sorted(errors))
        return problem_response(422, f"The request has invalid fields: {fields}.", errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        unreadable = unreadable_body(exc.__cause__, request.headers.get("content-encoding", "identity"))
        if exc.status_code == 400 and unreadable is not None:
            return problem_response(
                422, "The request has invalid fields: body.", errors={"body": [unreadable]}
            )
        return problem_response(exc.status_code, detail, headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", extra={"path": request.url.path}, exc_info=exc)
        return problem_response(500, "An unexpected error occurred; the server log has the details.")

    async def on_service_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        if isinstance(exc, NotFoundError):
            return problem_response(404, str(exc))
        if isinstance(exc, UnsupportedMediaTypeError):
            return problem_response(415, str(exc), errors=exc.errors)
        if isinstance(exc, InvalidInputError):
            return problem_response(422, str(exc), errors=exc.errors)
        return problem_response(409, str(exc))

    async def on_path_outside_root(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(422, str(exc), errors={"path": [str(exc)]})

    async def on_storage_full(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(507, "The disk holding Veil's storage is full; nothing was stored.")

    async def on_storage_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The store's answer names buckets and keys: the log has it, the client a plain sentence.
        log.error("storage failed: %s", exc)
        return problem_response(503, "Veil's storage cannot be reached right now; try again later.")

    async def on_too_large(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(413, f"The upload is {exc}; nothing was stored.")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(PathOutsideRootError, on_path_outside_root)
    app.add_exception_handler(StorageFullError, on_storage_full)
    app.add_exception_handler(StorageUnavailableError, on_storage_unavailable)
    app.add_exception_handler(UploadTooLargeError, on_too_large)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
