"""Task routes that stream: `GET /v1/tasks/events` (live updates, server-sent events) and
`GET /v1/tasks/archive` (the outputs of several tasks as one zip). The app includes this router before the
tasks router, so `/v1/tasks/{task_id}` does not take these paths."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from veil.core.errors import InvalidInputError
from veil.core.services.archives import archive_members, stream_zip
from veil.core.services.task_events import TaskWatcher
from veil.server.api.deps import CurrentKey, SessionDep, StorageDep
from veil.server.problems import problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/tasks", tags=["Tasks"])

POLL_INTERVAL_S = 0.5
KEEP_ALIVE_S = 15.0
STREAM_LIFETIME_S = 3600.0
"""An event stream ends after this long; the client connects again (proxies dislike endless answers)."""

_MAX_ARCHIVE_TASKS = 1000

_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: `event: task`, a TaskPublic in `data`; keep-alive comments.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
_ZIP: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A zip of every generated file, as `<task_id>/<name>`.",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={**_EVENTS, **problem_responses(401, 422, 429)},
)
def task_events(request: Request, key: CurrentKey, session: SessionDep) -> StreamingResponse:
    """Live updates of your tasks as server-sent events: every change of a task (status, progress) sends
    `event: task` with the task as in `GET /v1/tasks/{id}`; the first look covers the last minute. A
    `: keep-alive` comment comes every 15 s. Read it with fetch() streaming (EventSource cannot send the
    x-api-key header); the stream ends after an hour, so connect again when it does (and at once when
    the key is revoked)."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    session.close()  # the request's session would otherwise hold a connection while the stream lasts
    return StreamingResponse(
        _events(request, TaskWatcher(sessions, key)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, watcher: TaskWatcher) -> AsyncIterator[str]:
    started = last_sent = time.monotonic()
    yield ": connected\n\n"
    while time.monotonic() - started < STREAM_LIFETIME_S and not await request.is_disconnected():
        changed = await asyncio.to_thread(watcher.look)
        if changed is None:
            return  # the key was revoked
        for task in changed:
            yield f"event: task\ndata: {task.model_dump_json()}\n\n"
            last_sent = time.monotonic()
        if time.monotonic() - last_sent >= KEEP_ALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_INTERVAL_S)


@router.get(
    "/archive",
    response_class=StreamingResponse,
    responses={**_ZIP, **problem_responses(401, 404, 409, 422, 429)},
)
def task_archive(
    ids: Annotated[
        str,
        Query(
            min_length=1,
            max_length=50_000,
            description="Task ids, comma-separated.",
            examples=["task_euyrvozb9302uwhq,task_avyrvozb9302uwhq"],
        ),
    ],
    key: CurrentKey,
    session: SessionDep,
    storage: StorageDep,
) -> StreamingResponse:
    """Every generated file of your completed tasks as one zip, streamed; a task you do not have answers
    404, one not completed 409."""
    task_ids = _task_ids(ids)
    members = archive_members(session, owner=key, task_ids=task_ids)
    name = f"{task_ids[0]}.zip" if len(set(task_ids)) == 1 else "veil-tasks.zip"
    session.close()  # the request's session would otherwise hold a connection while the zip streams
    return StreamingResponse(
        stream_zip(storage, members),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _task_ids(ids: str) -> list[str]:
    task_ids = [part.strip() for part in ids.split(",") if part.strip()]
    if not task_ids:
        raise InvalidInputError({"ids": ["Give one or more task ids, comma-separated."]})
    if len(task_ids) > _MAX_ARCHIVE_TASKS:
        raise InvalidInputError({"ids": [f"At most {_MAX_ARCHIVE_TASKS} tasks per archive."]})
    return task_ids
