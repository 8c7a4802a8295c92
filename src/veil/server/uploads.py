"""One file field of a `multipart/form-data` request, read as the body arrives.

Starlette's form parser spools every file to a temporary file before the route runs; here the chosen
field's bytes are handed on chunk by chunk instead, so an upload is written to storage once, in a single
pass, and never held in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from veil.core.errors import InvalidInputError
from veil.server.problems import Problem

__all__ = ["FORM_OVERHEAD_BYTES", "UploadedFile", "read_file_field"]

FORM_OVERHEAD_BYTES = 64 * 1024
"""Room for boundaries, part headers and small fields around the file in a request's Content-Length."""


@dataclass(frozen=True)
class UploadedFile:
    """The file field: the client's file name (untrusted) and its bytes as they arrive."""

    filename: str | None
    chunks: AsyncIterator[bytes]


@dataclass
class _PartState:
    """What the parser callbacks have seen so far."""

    field_name: str
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    in_field: bool = False  # the part being parsed is the file field
    found: bool = False
    filename: str | None = None
    finished: bool = False
    pending: list[bytes] = field(default_factory=list)

    def on_part_begin(self) -> None:
        self.headers.clear()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_name).lower()] = bytes(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.in_field = not self.found and options.get(b"name") == self.field_name.encode()
        if self.in_field:
            self.found = True
            raw_name = options.get(b"filename")
            # Browsers send the name as UTF-8 bytes; the options parser hands them back untouched.
            self.filename = raw_name.decode("utf-8", errors="replace") if raw_name is not None else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_field:
            self.pending.append(data[start:end])

    def on_part_end(self) -> None:
        if self.in_field:
            self.finished = True
            self.in_field = False


async def read_file_field(request: Request, *, field_name: str, max_bytes: int) -> UploadedFile:
    """Reads the request up to the start of the file field and returns it, its bytes still to come.

    Raises:
        Problem: 413 when Content-Length says the body is over `max_bytes` (plus form overhead); 400 when
            the body is not well-formed multipart or ends inside the file.
        InvalidInputError: under `field_name`, when the body is not multipart/form-data or has no such field.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD_BYTES:
        raise Problem(413, f"The upload is larger than the limit of {max_bytes} bytes; nothing was stored.")
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        message = f"Send the file as multipart/form-data in a field named {field_name!r}."
        raise InvalidInputError({field_name: [message]})
    state = _PartState(field_name)
    try:
        parser = _parser(boundary, state)
    except FormParserError as exc:
        raise Problem(400, f"The multipart boundary is unusable: {exc}") from exc
    body = request.stream()
    while not state.found:
        if not await _feed(parser, body):
            raise InvalidInputError({field_name: [f"The form has no field named {field_name!r}."]})
    return UploadedFile(filename=state.filename, chunks=_field_chunks(parser, body, state))


async def _field_chunks(
    parser: MultipartParser, body: AsyncIterator[bytes], state: _PartState
) -> AsyncIterator[bytes]:
    while True:
        ready, state.pending = state.pending, []
        for chunk in ready:
            yield chunk
        if state.finished:
            return
        if not await _feed(parser, body):
            raise Problem(400, "The request body ended before the file did.")


async def _feed(parser: MultipartParser, body: AsyncIterator[bytes]) -> bool:
    """Parses the next piece of the body; False when the body has ended."""
    try:
        chunk = await anext(body)
    except StopAsyncIteration:
        return False
    try:
        parser.write(chunk)
    except FormParserError as exc:
        raise Problem(400, f"The multipart body is malformed: {exc}") from exc
    return True


def _parser(boundary: bytes, state: _PartState) -> MultipartParser:
    return MultipartParser(
        boundary,
        {
            "on_part_begin": state.on_part_begin,
            "on_header_field": state.on_header_field,
            "on_header_value": state.on_header_value,
            "on_header_end": state.on_header_end,
            "on_headers_finished": state.on_headers_finished,
            "on_part_data": state.on_part_data,
            "on_part_end": state.on_part_end,
        },
    )
