"""Resumable uploads, TUS 1.0.0 core protocol and creation extension: `OPTIONS /v1/uploads`,
`POST /v1/uploads`, `HEAD /v1/uploads/{id}`, `PATCH /v1/uploads/{id}`, plus `GET /v1/uploads/{id}` in
JSON. A complete upload becomes a stored file, as if sent to `POST /v1/files`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from starlette.requests import ClientDisconnect

from veil.core.services.uploads import (
    UploadPublic,
    append_to_upload,
    create_upload,
    describe_upload,
    get_upload,
    parse_upload_metadata,
    upload_length_limit,
)
from veil.core.storage import UploadTooLargeError
from veil.server.api.deps import CurrentKey, SessionDep, SettingsDep, StorageDep
from veil.server.problems import Problem, problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/uploads", tags=["Uploads"])

TUS_VERSION = "1.0.0"
OFFSET_MEDIA_TYPE = "application/offset+octet-stream"


def _header(description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": schema_type}}


_TUS_RESUMABLE = _header("The TUS version the server speaks: 1.0.0.")
_UPLOAD_OFFSET = _header("Bytes received so far.", "integer")
_PATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {OFFSET_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}

TusResumable = Annotated[str, Header(description="The client's TUS version; must be 1.0.0.")]


def _tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


def _check_version(tus_resumable: str) -> None:
    if tus_resumable != TUS_VERSION:
        raise Problem(
            412,
            f"This server speaks TUS {TUS_VERSION}, not {tus_resumable!r}.",
            headers={"Tus-Version": TUS_VERSION},
        )


@router.options(
    "",
    status_code=204,
    response_class=Response,
    responses={
        204: {
            "description": "What the server supports.",
            "headers": {
                "Tus-Resumable": _TUS_RESUMABLE,
                "Tus-Version": _header("Versions supported: 1.0.0."),
                "Tus-Extension": _header("Extensions supported: creation."),
                "Tus-Max-Size": _header("The largest Upload-Length accepted, bytes.", "integer"),
            },
        }
    },
)
def upload_options(settings: SettingsDep) -> Response:
    """TUS discovery: version, extensions and the size limit (no API key needed)."""
    return Response(
        status_code=204,
        headers=_tus_headers(
            **{
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": "creation",
                "Tus-Max-Size": str(settings.max_upload_bytes),
            }
        ),
    )


@router.post(
    "",
    status_code=201,
    response_class=Response,
    responses={
        201: {
            "description": "Created; send the bytes with PATCH to the Location.",
            "headers": {"Location": _header("/v1/uploads/{id}"), "Tus-Resumable": _TUS_RESUMABLE},
        },
        **problem_responses(401, 412, 413, 422, 429),
    },
)
def start_upload(
    key: CurrentKey,
    session: SessionDep,
    settings: SettingsDep,
    tus_resumable: TusResumable,
    upload_length: Annotated[int, Header(ge=1, description="The upload's size in bytes.")],
    upload_metadata: Annotated[
        str | None,
        Header(
            max_length=10_000,
            description=(
                "`filename <base64 of the name>`, TUS style; `purpose <base64 of request>` for the input of "
                "a background request (a backup, annotations), which any content may be."
            ),
        ),
    ] = None,
) -> Response:
    """Start a resumable upload of `Upload-Length` bytes (TUS creation); answers its URL in Location."""
    _check_version(tus_resumable)
    metadata = parse_upload_metadata(upload_metadata)
    purpose = metadata.get("purpose", "file")
    try:
        upload = create_upload(
            session,
            owner=key,
            settings=settings,
            length=upload_length,
            filename=metadata.get("filename"),
            purpose=purpose,
        )
    except UploadTooLargeError as exc:
        limit = upload_length_limit(settings, purpose)
        raise Problem(
            413, f"Upload-Length {upload_length} is larger than the limit of {limit} bytes."
        ) from exc
    return Response(
        status_code=201,
        headers=_tus_headers(Location=f"/v1/uploads/{upload.id}", **{"Cache-Control": "no-store"}),
    )


@router.head(
    "/{upload_id}",
    response_class=Response,
    responses={
        200: {
            "description": "How far the upload got.",
            "headers": {
                "Upload-Offset": _UPLOAD_OFFSET,
                "Upload-Length": _header("The announced size, bytes.", "integer"),
                "Tus-Resumable": _TUS_RESUMABLE,
            },
        },
        **problem_responses(401, 404, 412, 422, 429),
    },
)
def upload_offset(
    upload_id: str, key: CurrentKey, session: SessionDep, tus_resumable: TusResumable
) -> Response:
    """The upload's offset, to resume from after a dropped connection."""
    _check_version(tus_resumable)
    upload = get_upload(session, owner=key, upload_id=upload_id)
    headers = {
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Cache-Control": "no-store",
    }
    return Response(status_code=200, headers=_tus_headers(**headers))


@router.patch(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    openapi_extra=_PATCH_BODY,
    responses={
        204: {
            "description": "The bytes were stored.",
            "headers": {
                "Upload-Offset": _UPLOAD_OFFSET,
                "Tus-Resumable": _TUS_RESUMABLE,
                "Veil-File-Id": _header("Once the upload is complete: the stored file's id."),
            },
        },
        **problem_responses(401, 404, 409, 412, 413, 415, 422, 429, 507),
    },
)
async def append_bytes(
    upload_id: str,
    request: Request,
    key: CurrentKey,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tus_resumable: TusResumable,
    upload_offset: Annotated[int, Header(ge=0, description="Where these bytes go; the current offset.")],
) -> Response:
    """Send the next bytes, from `Upload-Offset` (which must be the upload's offset, else 409). Once all
    bytes are in, the upload becomes a stored file (Veil-File-Id); content that is no photo or video
    answers 415 and the upload is deleted."""
    _check_version(tus_resumable)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != OFFSET_MEDIA_TYPE:
        raise Problem(415, f"Send the bytes as {OFFSET_MEDIA_TYPE}, not {content_type or 'no type'!r}.")
    try:
        appended = await append_to_upload(
            session,
            storage=storage,
            settings=settings,
            owner=key,
            upload_id=upload_id,
            offset=upload_offset,
            chunks=_body(request),
        )
    except UploadTooLargeError as exc:
        raise Problem(
            413, f"The bytes go past the upload's Upload-Length; none of them were kept ({exc})."
        ) from exc
    headers = {"Upload-Offset": str(appended.offset)}
    if appended.file_id is not None:
        headers["Veil-File-Id"] = appended.file_id
    return Response(status_code=204, headers=_tus_headers(**headers))


@router.get("/{upload_id}", responses=problem_responses(401, 404, 422, 429))
def read_upload(upload_id: str, key: CurrentKey, session: SessionDep) -> UploadPublic:
    """The upload's progress in JSON, and its stored file once complete."""
    upload = get_upload(session, owner=key, upload_id=upload_id)
    return describe_upload(session, owner=key, upload=upload)


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes away ends it, and what arrived is kept."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        return
