"""Fixtures for calling the worker's task functions directly: a migrated SQLite database, storage, a queue
that records what was sent, a key, and helpers that submit tasks through the same service functions the
API uses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import RecordingQueue
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, StoredFile, Task
from veil.core.schemas import TaskCreate
from veil.core.services.blurit import (
    DirectoryTaskCreate,
    FileTaskCreate,
    create_directory_task,
    create_file_task,
)
from veil.core.services.files import store_upload
from veil.core.services.keys import create_api_key
from veil.core.services.tasks import create_task
from veil.core.settings import Settings
from veil.core.storage import LocalStorage
from veil.worker.context import WorkerContext


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", allow_private_callbacks=True, callback_retries=2)


@pytest.fixture
def context(settings: Settings, sessions: sessionmaker[Session], queue: RecordingQueue) -> WorkerContext:
    # A beat on every progress call, so a cancellation is noticed at the next frame.
    return WorkerContext(
        settings,
        sessions,
        LocalStorage(settings.storage_dir),
        queue,
        beat_interval_s=0.0,  # type: ignore[arg-type]
    )


@pytest.fixture
def owner(sessions: sessionmaker[Session]) -> ApiKey:
    with session_scope(sessions) as session:
        return create_api_key(session, name="alice").record


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def upload(context: WorkerContext, owner: ApiKey, path: Path, name: str | None = None) -> StoredFile:
    """Stores `path` as an upload of `owner`, as `POST /v1/files` does."""
    with context.sessions() as session:
        public = asyncio.run(
            store_upload(
                session,
                storage=context.storage,
                settings=context.settings,
                owner=owner,
                filename=name or path.name,
                chunks=_chunks(path.read_bytes()),
            )
        )
        return session.get_one(StoredFile, public.id)


def submit(
    context: WorkerContext,
    owner: ApiKey,
    input_id: str,
    operation: str = "anonymize",
    parameters: dict[str, Any] | None = None,
    callback_url: str | None = None,
) -> str:
    """Creates a `/v1` task, as `POST /v1/tasks` does; returns its id."""
    request = TaskCreate.model_validate(
        {
            "operation": operation,
            "parameters": parameters or {},
            "input": input_id,
            "callback_url": callback_url,
        }
    )
    with context.sessions() as session:
        return create_task(
            session, owner=owner, settings=context.settings, storage=context.storage, request=request
        ).id


def submit_blurit(context: WorkerContext, owner: ApiKey, body: dict[str, Any]) -> str:
    """Creates a BlurIt file or directory task, as `POST /api/task/...` does; returns its id."""
    root = context.settings.file_root_dir
    with context.sessions() as session:
        if "input_directory" in body:
            request = DirectoryTaskCreate.model_validate(body)
            return create_directory_task(session, owner=owner, request=request, file_root=root).id
        return create_file_task(
            session, owner=owner, request=FileTaskCreate.model_validate(body), file_root=root
        ).id


def task_row(context: WorkerContext, task_id: str) -> Task:
    with context.sessions() as session:
        return session.get_one(Task, task_id)


def generated(context: WorkerContext, task_id: str) -> list[StoredFile]:
    with context.sessions() as session:
        return list(
            session.scalars(select(StoredFile).where(StoredFile.task_id == task_id).order_by(StoredFile.name))
        )


def key_row(context: WorkerContext, key_id: str) -> ApiKey:
    with context.sessions() as session:
        return session.get_one(ApiKey, key_id)
