"""A stored file's bytes as an HTTP answer, with HTTP Range (seeking in videos), from either backend.

On local disk Starlette's FileResponse serves the file (sendfile, ETag, multiple ranges). From S3 the
bytes are proxied: each range is read from the store and streamed on, never held whole. A presigned
redirect would spare the API the traffic, but it sends the browser to the S3 host, which users often
cannot reach (a private network, or a name that only resolves inside it), puts a URL that works without
a key in browser history and proxies, and bypasses the expiry and ownership checks of later requests.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable, Response

from veil.core.errors import NotFoundError
from veil.core.storage import Storage
from veil.server.problems import Problem

__all__ = ["stored_file_response"]

_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def stored_file_response(
    storage: Storage, request: Request, *, key: str, media_type: str, filename: str, file_id: str
) -> Response:
    """The bytes under `key` as a download named `filename`; a single range is answered 206.

    Raises:
        NotFoundError: the bytes are gone from storage.
        Problem: a malformed Range (400), or one starting past the end (416).
    """
    path = storage.local_file(key)
    if path is not None:
        if not path.is_file():
            raise NotFoundError("File content", file_id)
        _check_range(request, path.stat().st_size)
        return FileResponse(path, media_type=media_type, filename=filename, headers=_NOSNIFF)
    try:
        size = storage.size(key)
    except FileNotFoundError:
        raise NotFoundError("File content", file_id) from None
    ranges = _check_range(request, size)
    headers = {**_NOSNIFF, "Accept-Ranges": "bytes", "Content-Disposition": _attachment(filename)}
    if len(ranges) != 1:  # none asked, or several: the whole file (RFC 9110 lets a server ignore Range)
        headers["Content-Length"] = str(size)
        return StreamingResponse(storage.read_range(key, 0, size), media_type=media_type, headers=headers)
    [(start, end)] = ranges
    headers.update({"Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{size}"})
    return StreamingResponse(
        storage.read_range(key, start, end), status_code=206, media_type=media_type, headers=headers
    )


def _check_range(request: Request, size: int) -> list[tuple[int, int]]:
    """The requested ranges as (start, end exclusive), none without a Range header or with If-Range; a
    bad Range header is answered as a problem, where FileResponse would answer in plain text."""
    requested = request.headers.get("range")
    if requested is None or "if-range" in request.headers:
        return []  # with If-Range the whole file may be served; FileResponse decides, S3 serves it whole
    try:
        return FileResponse._parse_range_header(requested, size)  # the parser FileResponse then uses
    except MalformedRangeHeader as exc:
        raise Problem(400, f"The Range header is malformed: {exc.content}") from exc
    except RangeNotSatisfiable as exc:
        raise Problem(
            416,
            f"The range {requested!r} starts beyond the file's {size} bytes.",
            headers={"Content-Range": f"bytes */{size}"},
        ) from exc


def _attachment(filename: str) -> str:
    """Content-Disposition as FileResponse writes it."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'
