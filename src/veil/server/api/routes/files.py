"""The files API: `POST /v1/files` (upload), `GET /v1/files`, `GET /v1/files/{id}`,
`GET /v1/files/{id}/content` and `DELETE /v1/files/{id}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from veil.core.schemas import FileListQuery, FilePublic, FilesPublic
from veil.core.services.files import delete_file, file_public, get_file, list_files, store_upload
from veil.server.api.deps import CurrentKey, SessionDep, SettingsDep, StorageDep
from veil.server.content import stored_file_response
from veil.server.problems import problem_responses
from veil.server.uploads import read_file_field

__all__ = ["router"]

router = APIRouter(prefix="/v1/files", tags=["Files"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes, with its type and a Content-Disposition file name.",
        "content": {media: {"schema": {}} for media in ("image/*", "video/*", "application/json")},
    },
    206: {"description": "The requested byte range (HTTP Range)."},
}


@router.post(
    "",
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 507),
)
async def upload_file(
    request: Request, key: CurrentKey, session: SessionDep, storage: StorageDep, settings: SettingsDep
) -> FilePublic:
    """Upload a photo or video in the multipart field `file`; its type is told from its content."""
    upload = await read_file_field(request, field_name="file", max_bytes=settings.max_upload_bytes)
    return await store_upload(
        session, storage=storage, settings=settings, owner=key, filename=upload.filename, chunks=upload.chunks
    )


@router.get("", responses=problem_responses(401, 422, 429))
def read_files(query: Annotated[FileListQuery, Query()], key: CurrentKey, session: SessionDep) -> FilesPublic:
    """Your files, a page at a time, with sorting, search, equality filters and a JSON Logic filter."""
    return list_files(session, owner=key, query=query)


@router.get("/{file_id}", responses=problem_responses(401, 404, 422, 429))
def read_file(file_id: str, key: CurrentKey, session: SessionDep) -> FilePublic:
    return file_public(get_file(session, owner=key, file_id=file_id))


@router.get(
    "/{file_id}/content",
    response_class=FileResponse,
    responses={**_CONTENT, **problem_responses(400, 401, 404, 416, 422, 429)},
)
def download_file(
    file_id: str, request: Request, key: CurrentKey, session: SessionDep, storage: StorageDep
) -> Response:
    """The file's bytes; HTTP Range requests are answered with 206 Partial Content (seeking in videos)."""
    record = get_file(session, owner=key, file_id=file_id)
    return stored_file_response(
        storage,
        request,
        key=record.storage_key,
        media_type=record.media_type,
        filename=record.name,
        file_id=file_id,
    )


@router.delete("/{file_id}", status_code=204, responses=problem_responses(401, 404, 409, 422, 429))
def remove_file(file_id: str, key: CurrentKey, session: SessionDep, storage: StorageDep) -> None:
    """Delete a file and its bytes; refused while a queued or running task reads it."""
    delete_file(session, owner=key, storage=storage, file_id=file_id)
