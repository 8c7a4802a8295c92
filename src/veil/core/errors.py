"""Errors of the service layer, raised where the problem is known; the server turns them into HTTP
problems (`veil.server.problems`) and the CLI into one-line messages.

    ServiceError
    ├── NotFoundError      a resource is missing or belongs to another key (both answer 404)
    ├── ConflictError      the resource is in a state that forbids the request
    ├── UnreadableInputError  a background request's file (a backup, annotations) cannot be used; the
    │                         message says why, and nothing of it was stored
    └── InvalidInputError  named fields are wrong: {field: [message, ...]}
        └── MediaRefusedError  an upload's content is refused; its message says why
            ├── UnsupportedMediaTypeError  no photo or video Veil handles (415)
            └── UnprocessableMediaError    a photo or video Veil cannot process: too many pixels, no video
                                           stream, cut short or damaged (422)
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "InvalidInputError",
    "MediaRefusedError",
    "NotFoundError",
    "ServiceError",
    "UnprocessableMediaError",
    "UnreadableInputError",
    "UnsupportedMediaTypeError",
]


class ServiceError(Exception):
    """Base of the errors a request can cause."""


class NotFoundError(ServiceError):
    def __init__(self, resource: str, resource_id: str) -> None:
        super().__init__(f"{resource} with id {resource_id} not found.")


class ConflictError(ServiceError):
    pass


class UnreadableInputError(ServiceError):
    pass


class InvalidInputError(ServiceError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        fields = ", ".join(sorted(errors))
        super().__init__(f"The request has invalid fields: {fields}.")


class MediaRefusedError(InvalidInputError):
    """An upload's content is refused. `detail` says why, for a person; it is also the message for the
    `file` field."""

    def __init__(self, detail: str) -> None:
        super().__init__({"file": [detail]})
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class UnsupportedMediaTypeError(MediaRefusedError):
    """The content (never the name) is of a type Veil cannot process; answered as 415."""


class UnprocessableMediaError(MediaRefusedError):
    """A photo or video Veil handles, that it still cannot process: more pixels than the limit, no video
    stream, or cut short or damaged; told from headers and container structure, never from decoding."""
