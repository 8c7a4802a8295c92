"""Tasks of the `/v1` API: create, find, list and cancel them, and describe one as the API shows it.

The server calls these for requests; the worker calls `describe_task` for callback bodies and
`find_output_media` to resolve a chained task's input. Creating a task only records it: the caller
enqueues its id once the transaction is committed, so a worker never picks up a task it cannot read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from veil.core.database.listing import Listing, fetch_page, visible_to
from veil.core.database.models import FINAL_STATUSES, ApiKey, StoredFile, Task, utc_now
from veil.core.errors import ConflictError, InvalidInputError, NotFoundError
from veil.core.parameters import OPERATIONS, DetectParameters, RenderParameters
from veil.core.queue import MediaKind, Queued, route
from veil.core.safety.urls import check_public_url
from veil.core.schemas import DocumentSummary, TaskCreate, TaskListQuery, TaskPublic, TaskResult, TasksPublic
from veil.core.services.documents import DOCUMENT_TYPE
from veil.core.services.files import file_public, get_file, get_own_file, store_document
from veil.core.settings import Settings
from veil.core.storage import Storage

__all__ = [
    "TASK_LISTING",
    "add_task",
    "cancel_task",
    "create_task",
    "describe_task",
    "find_output_media",
    "get_task",
    "get_task_document",
    "list_tasks",
    "tasks_waiting_on",
]

TASK_LISTING = Listing(
    model=Task,
    fields={
        "id": Task.id,
        "operation": Task.operation,
        "status": Task.status,
        "progress": Task.progress,
        "input": func.coalesce(Task.input["file"].as_string(), Task.input["task"].as_string()),
        "created_at": Task.created_at,
        "updated_at": Task.updated_at,
    },
    search_fields=("id", "operation", "status"),
)

# Only these produce media another task can work on.
_CHAINABLE_OPERATIONS = frozenset({"anonymize"})
# These take a stored file only: `render` draws given boxes, which belong to the original media.
_FILE_ONLY_OPERATIONS = frozenset({"render"})
# What a render document's file properties hold beside its size, as task views show it.
_SUMMARY_FIELDS = tuple(name for name in DocumentSummary.model_fields if name != "file_id")


def create_task(
    session: Session, *, owner: ApiKey, settings: Settings, storage: Storage, request: TaskCreate
) -> TaskPublic:
    """Validates and records a queued task; the caller enqueues it after this returns. A `render` task's
    document is a file: one given inline is stored as one, and the task keeps the file id and a summary.

    Raises:
        InvalidInputError: bad parameters (under `parameters.<field>`), an input this key does not have or
            cannot chain on, or a task id for a `render` task (`input`), a `detections_file` that is not
            one of this key's render documents, or a callback URL that is not public (`callback_url`).
        ConflictError: the input task failed or was cancelled, or its output media is gone.
    """
    task, stored = _new_task(session, owner=owner, settings=settings, storage=storage, request=request)
    session.add(task)
    try:
        session.commit()
    except BaseException:
        if stored is not None:  # the inline document's bytes, which no row records now
            storage.delete(stored.storage_key)
        raise
    return describe_task(session, task)


def add_task(
    session: Session, *, owner: ApiKey, settings: Settings, storage: Storage, request: TaskCreate
) -> Task:
    """Validates a queued task and adds it to `session` without committing, for a caller that commits it
    with changes of its own (an import's render task, with the import's result). It takes no inline
    document: a `render` task names its `detections_file`, so nothing is stored outside the transaction.

    Raises:
        InvalidInputError, ConflictError: as `create_task`.
    """
    if request.parameters.get("detections") is not None:
        raise ValueError("add_task takes a render document by file id only")
    task, _ = _new_task(session, owner=owner, settings=settings, storage=storage, request=request)
    session.add(task)
    session.flush()
    return task


def _new_task(
    session: Session, *, owner: ApiKey, settings: Settings, storage: Storage, request: TaskCreate
) -> tuple[Task, StoredFile | None]:
    """The task `request` asks for, validated, and the file an inline render document was stored as."""
    validated = _validate_parameters(request.operation, request.parameters)
    if request.operation in _FILE_ONLY_OPERATIONS and not request.input.startswith("file_"):
        raise InvalidInputError(
            {
                "input": [
                    f"A {request.operation} task works on a file: give the original's file id (file_...)."
                ]
            }
        )
    resolved, kind = _resolve_input(session, owner=owner, input_id=request.input)
    task_input: dict[str, Any] = {**resolved}
    if request.callback_url is not None:
        check_public_url(request.callback_url, settings.allow_private_callbacks)
    parameters = validated.model_dump(mode="json")
    stored: StoredFile | None = None
    if isinstance(validated, RenderParameters):
        stored, document = _render_document(
            session, owner=owner, settings=settings, storage=storage, given=validated
        )
        parameters = validated.model_dump(mode="json", exclude={"detections"})
        parameters["detections_file"] = document["file_id"]
        task_input["document"] = document
    device = validated.device if isinstance(validated, DetectParameters) else "any"
    task = Task(
        owner_id=owner.id,
        api="v1",
        operation=request.operation,
        parameters=parameters,
        input=task_input,
        queue=route(kind, device),
        callback_url=request.callback_url,
    )
    return task, stored


def get_task_document(session: Session, *, owner: ApiKey, task_id: str) -> StoredFile:
    """The render document (`veil.detections/1` file) of task `task_id`.

    Raises:
        NotFoundError: no such task for this key, it is no render task, or its document expired or was
            deleted.
    """
    file_id = get_task(session, owner=owner, task_id=task_id).parameters.get("detections_file")
    try:
        return get_file(session, owner=owner, file_id=str(file_id))
    except NotFoundError as exc:
        raise NotFoundError("Render document of task", task_id) from exc


def get_task(session: Session, *, owner: ApiKey, task_id: str) -> Task:
    """The `/v1` task `task_id` if `owner` may see it.

    Raises:
        NotFoundError: no such task for this key.
    """
    task = session.scalar(select(Task).where(Task.id == task_id, *_visible(owner)))
    if task is None:
        raise NotFoundError("Task", task_id)
    return task


def list_tasks(session: Session, *, owner: ApiKey, query: TaskListQuery) -> TasksPublic:
    """A page of the `/v1` tasks `owner` sees; see `TaskListQuery` for sorting, search and filters.

    Raises:
        InvalidInputError: a bad `sort` or `filter`.
    """
    count, tasks = fetch_page(session, listing=TASK_LISTING, query=query, where=_visible(owner))
    return TasksPublic(
        count=count, page=query.page, page_size=query.page_size, results=_describe(session, tasks)
    )


def cancel_task(session: Session, *, owner: ApiKey, task_id: str) -> TaskPublic:
    """Marks a queued or started task cancelled; workers skip or stop a cancelled task.

    Raises:
        NotFoundError: no such task for this key.
        ConflictError: the task already finished.
    """
    task = get_task(session, owner=owner, task_id=task_id)
    now = utc_now()
    # Conditional, so a worker finishing the task at the same moment either wins or loses, never both.
    cancelled = session.scalar(
        update(Task)
        .where(Task.id == task.id, Task.status.not_in(FINAL_STATUSES))
        .values(status="cancelled", updated_at=now, finished_at=now)
        .returning(Task.id)
    )
    session.commit()
    session.refresh(task)
    if cancelled is None:
        raise ConflictError(
            f"Task {task_id} is already {task.status}; only a queued or started task can be cancelled."
        )
    return describe_task(session, task)


def tasks_waiting_on(session: Session, *, task_id: str) -> list[Queued]:
    """The queued tasks chained on `task_id`'s output. Whoever ends `task_id` (the worker that completes or
    fails it, the request that cancels it) enqueues them, so they run, or fail, once their input is final."""
    chained = Task.input["task"].as_string() == task_id
    rows = session.execute(select(Task.id, Task.queue).where(chained, Task.status == "queued"))
    return [Queued(task_id, queue) for task_id, queue in rows]


def describe_task(session: Session, task: Task) -> TaskPublic:
    """The API view of a task: parameters with `input` and `callback_url`, and once completed its
    generated files (oldest first) and detection counts."""
    return _describe(session, [task])[0]


def find_output_media(session: Session, *, task_id: str) -> StoredFile | None:
    """The photo or video a task generated (not its JSON), or None when there is none (any more)."""
    is_media = or_(StoredFile.media_type.startswith("image/"), StoredFile.media_type.startswith("video/"))
    return session.scalar(
        select(StoredFile).where(StoredFile.task_id == task_id, is_media).order_by(StoredFile.created_at)
    )


def _describe(session: Session, tasks: Sequence[Task]) -> list[TaskPublic]:
    """Describes several tasks with one query for all their generated files."""
    completed = [task.id for task in tasks if task.status == "completed"]
    generated: dict[str, list[StoredFile]] = {task_id: [] for task_id in completed}
    if completed:
        rows = session.scalars(
            select(StoredFile)
            .where(StoredFile.task_id.in_(completed))
            .order_by(StoredFile.created_at, StoredFile.id)
        )
        for row in rows:
            generated[str(row.task_id)].append(row)
    return [_public(task, generated.get(task.id)) for task in tasks]


def _public(task: Task, generated: list[StoredFile] | None) -> TaskPublic:
    result = None
    if generated is not None:
        detections = (task.result or {}).get("detections", {})
        result = TaskResult(generated_files=[file_public(row) for row in generated], detections=detections)
    return TaskPublic.model_validate(
        {
            "id": task.id,
            "operation": task.operation,
            "parameters": {
                # A render document is a file, summarized in `render_document`; rows made before that
                # held it here, and a view never shows it.
                **{name: value for name, value in task.parameters.items() if name != "detections"},
                "input": task.input.get("file") or task.input.get("task"),
                "callback_url": task.callback_url,
            },
            "input_name": task.input.get("name"),
            "status": task.status,
            "queue": task.queue,
            "progress": task.progress,
            "result": result,
            "render_document": task.input.get("document"),
            "error": task.error or None,
            "callback_url": task.callback_url,
            "callback_delivery": task.callback_delivery,
            "created_at": task.created_at,
            "updated_at": task.updated_at,
        }
    )


def _validate_parameters(operation: str, parameters: dict[str, Any]) -> BaseModel:
    """The parameters, validated, with defaults filled in."""
    try:
        return OPERATIONS[operation].model_validate(parameters)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            field = ".".join(["parameters", *(str(part) for part in error["loc"])])
            errors.setdefault(field, []).append(error["msg"])
        raise InvalidInputError(errors) from exc


def _render_document(
    session: Session, *, owner: ApiKey, settings: Settings, storage: Storage, given: RenderParameters
) -> tuple[StoredFile | None, dict[str, Any]]:
    """The document's summary with its `file_id`, and the file stored now for a document given inline (None
    when the task names an uploaded one). A key names only its own documents, admin keys too: the worker
    reads the file as the task's owner."""
    if given.detections is not None:
        data = given.detections.model_dump_json().encode()
        summary = given.detections.tally().summary()
        stored = store_document(
            session, storage=storage, settings=settings, owner=owner, data=data, summary=summary
        )
        return stored, {"file_id": stored.id, **summary}
    file_id = str(given.detections_file)
    try:
        record = get_own_file(session, owner=owner, file_id=file_id)
    except NotFoundError as exc:
        raise InvalidInputError({"parameters.detections_file": [str(exc)]}) from exc
    if record.media_type != DOCUMENT_TYPE or "boxes" not in record.properties:
        raise InvalidInputError(
            {
                "parameters.detections_file": [
                    f"File {file_id} is no render document: upload a veil.detections/1 JSON document "
                    "(POST /v1/files) and name that file."
                ]
            }
        )
    return None, {"file_id": file_id, **{name: record.properties[name] for name in _SUMMARY_FIELDS}}


def _resolve_input(session: Session, *, owner: ApiKey, input_id: str) -> tuple[dict[str, str], MediaKind]:
    """{"file": id} or {"task": id} for a file or an anonymize task that `owner` sees, with "name": the
    file's name as uploaded, or the input task's; and whether the task will work on a photo or a video. A
    chained task may be submitted while its input task is still queued or running (the worker waits for
    it). The name is kept so that listings show it after the file expired."""
    if input_id.startswith("file_"):
        try:
            record = get_file(session, owner=owner, file_id=input_id)
        except NotFoundError as exc:
            raise InvalidInputError({"input": [str(exc)]}) from exc
        if not record.media_type.startswith(("image/", "video/")):
            raise InvalidInputError(
                {
                    "input": [
                        f"File {input_id} is a JSON document, not a photo or video; a render task names its "
                        "boxes in parameters.detections_file."
                    ]
                }
            )
        return {"file": input_id, "name": record.name}, _kind(record.media_type)
    if not input_id.startswith("task_"):
        raise InvalidInputError({"input": ["Give a file id (file_...) or a task id (task_...)."]})
    upstream = session.scalar(select(Task).where(Task.id == input_id, *_visible(owner)))
    if upstream is None:
        raise InvalidInputError({"input": [f"Task with id {input_id} not found."]})
    if upstream.operation not in _CHAINABLE_OPERATIONS:
        raise InvalidInputError(
            {"input": [f"Task {input_id} is a {upstream.operation} task; only an anonymize task has media."]}
        )
    if upstream.status in ("failed", "cancelled"):
        raise ConflictError(f"Task {input_id} {upstream.status}; it has no output to work on.")
    if upstream.status == "completed" and find_output_media(session, task_id=input_id) is None:
        raise ConflictError(f"The output media of task {input_id} has expired or was deleted.")
    upstream_name = upstream.input.get("name")
    task_input = {"task": input_id} if upstream_name is None else {"task": input_id, "name": upstream_name}
    return task_input, _chained_media_kind(session, input_id)


def _chained_media_kind(session: Session, task_id: str) -> MediaKind:
    """Photo or video: that of task `task_id`'s output once made, else of its own input (a file of a
    queued or running task is never expired)."""
    while (output := find_output_media(session, task_id=task_id)) is None:
        task_input = session.get_one(Task, task_id).input
        if "file" in task_input:
            record = session.get(StoredFile, task_input["file"])
            return "photo" if record is None else _kind(record.media_type)
        task_id = task_input["task"]
    return _kind(output.media_type)


def _kind(media_type: str) -> MediaKind:
    return "video" if media_type.startswith("video/") else "photo"


def _visible(owner: ApiKey) -> list[ColumnElement[bool]]:
    return [visible_to(owner, Task.owner_id), Task.api == "v1"]
