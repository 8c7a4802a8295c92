"""The JSON shapes of the `/v1` files and tasks API, shared by the server (answers) and the worker (callback
bodies). Field names follow the scan-documents API; listing parameters follow CVAT's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DatasetExport",
    "DocumentSummary",
    "FileListQuery",
    "FileProperties",
    "FilePublic",
    "FilesPublic",
    "FormatPublic",
    "FormatsPublic",
    "KeyCreate",
    "KeyCreated",
    "KeyPublic",
    "KeyUsageCounts",
    "KeysPublic",
    "ListQuery",
    "Operation",
    "RequestCreated",
    "RequestListQuery",
    "RequestOperation",
    "RequestPublic",
    "RequestStatus",
    "RequestsPublic",
    "TaskCreate",
    "TaskError",
    "TaskListQuery",
    "TaskPublic",
    "TaskResult",
    "TaskStatus",
    "TasksPublic",
]

Operation = Literal["anonymize", "detect", "render"]
"""The keys of `veil.core.parameters.OPERATIONS` (a test keeps them equal)."""

TaskStatus = Literal["queued", "started", "completed", "failed", "cancelled"]
"""`veil.core.database.models.TASK_STATUSES` (a test keeps them equal)."""


def _known(description: str) -> Any:
    """A property that is left out of the JSON when it could not be read."""
    return Field(default=None, description=description, exclude_if=lambda value: value is None)


class FileProperties(BaseModel):
    """What is known of a file's content; a property that could not be read is left out."""

    model_config = ConfigDict(extra="allow")

    size: int = Field(description="Bytes.")
    width: int | None = _known("Pixels; photos as shown, videos as coded.")
    height: int | None = _known("Pixels; photos as shown, videos as coded.")
    duration: float | None = _known("Videos: seconds.")
    fps: float | None = _known("Videos: average frames per second.")
    frame_count: int | None = _known("Videos: frames, when the container records them.")
    media: Literal["image", "video"] | None = _known("Render documents: what the boxes were drawn on.")
    frames: int | None = _known("Render documents: frames that list boxes.")
    boxes: int | None = _known("Render documents: boxes, all frames together.")
    labels: dict[str, int] | None = _known("Render documents: boxes per label.")


class FilePublic(BaseModel):
    """An uploaded or generated file."""

    id: str = Field(examples=["file_avyrvozb9302uwhq"])
    name: str
    type: str = Field(description="MIME type, told from the content.", examples=["image/png"])
    properties: FileProperties
    task_id: str | None = Field(description="The task that generated the file; null for uploads.")
    created_at: datetime
    expires_at: datetime | None = Field(description="When the file is deleted.")


class FilesPublic(BaseModel):
    count: int = Field(description="Files matching the query, on every page.")
    page: int
    page_size: int
    results: list[FilePublic]


class TaskResult(BaseModel):
    generated_files: list[FilePublic]
    detections: dict[str, int] = Field(
        default_factory=dict,
        description="How many regions were found, by label: boxes in a photo, tracks in a video (an object "
        "followed across frames counts once).",
        examples=[{"face": 3}],
    )


class DocumentSummary(BaseModel):
    """What a render task's document lists, without its boxes: `GET /v1/tasks/{id}/detections` gives it
    whole."""

    file_id: str = Field(description="The document's file (`detections_file`).", examples=["file_x9302uwhq"])
    media: Literal["image", "video"] = Field(description="What the boxes were drawn on.")
    width: int
    height: int
    frames: int = Field(description="Frames that list boxes.")
    boxes: int = Field(description="Boxes, all frames together.")
    labels: dict[str, int] = Field(description="Boxes per label.", examples=[{"face": 120, "plate": 8}])


class TaskError(BaseModel):
    title: str
    detail: str


class CallbackDelivery(BaseModel):
    """How the last callback delivery went: retries go on while `state` is "retrying"; "refused" means the
    URL now leads to a private address."""

    state: Literal["delivered", "retrying", "failed", "refused"]
    attempts: int
    response_status: int | None = Field(description="The receiver's HTTP status, when it answered.")
    error: str | None = None
    at: datetime


class TaskPublic(BaseModel):
    """A task: an operation on an input file (or on another task's output)."""

    id: str = Field(examples=["task_euyrvozb9302uwhq"])
    operation: Operation
    parameters: dict[str, Any] = Field(
        description="The operation's parameters with defaults filled in, plus `input` and `callback_url`."
    )
    input_name: str | None = Field(
        default=None,
        description="The input file's name as uploaded (for a task chained on another, that task's input "
        "name), kept after the file expires; null for tasks made before Veil recorded it.",
        examples=["street.jpg"],
    )
    status: TaskStatus
    queue: str = Field(
        description="The queue it waits in for a worker: photo, video, or gpu (`parameters.device`).",
        examples=["photo"],
    )
    progress: float = Field(ge=0.0, le=1.0)
    result: TaskResult | None = Field(description="Set once the task completed.")
    render_document: DocumentSummary | None = Field(
        default=None, description="Render tasks: a summary of the boxes to obscure."
    )
    error: TaskError | None = Field(description="Set when the task failed.")
    callback_url: str | None
    callback_delivery: CallbackDelivery | None = Field(
        default=None, description="Set once a callback was attempted."
    )
    created_at: datetime
    updated_at: datetime


class TasksPublic(BaseModel):
    count: int = Field(description="Tasks matching the query, on every page.")
    page: int
    page_size: int
    results: list[TaskPublic]


class TaskCreate(BaseModel):
    """A task to run: `input` is a file id, or an `anonymize` task's id to work on its output media (the
    task may still be queued or running). A `render` task's input is the file id of the original media."""

    model_config = ConfigDict(extra="forbid")

    operation: Operation
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "The options of the operation (AnonymizeParameters, DetectParameters or RenderParameters)."
        ),
    )
    input: str = Field(max_length=64, examples=["file_avyrvozb9302uwhq"])
    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="Receives a signed POST of the task when it completes or fails; public http(s) only.",
    )


class ListQuery(BaseModel):
    """Paging, order and filters of a listing, as query parameters."""

    page: int = Field(default=1, ge=1, le=1_000_000, description="A page number, from 1.")
    page_size: int = Field(default=20, ge=1, le=100, description="Results per page.")
    sort: str | None = Field(
        default=None,
        max_length=200,
        description="Fields to order by, comma-separated, '-' first for descending; default -created_at.",
        examples=["-created_at"],
    )
    search: str | None = Field(
        default=None, max_length=200, description="Text that the search fields contain."
    )
    filter: str | None = Field(
        default=None,
        max_length=10_000,
        description='A JSON Logic filter, e.g. {"and": [{"==": [{"var": "status"}, "completed"]}]}.',
    )


class FileListQuery(ListQuery):
    """Sort and filter fields: id, name, type, size, task_id, created_at, expires_at.
    Search fields: id, name, type."""

    name: str | None = Field(default=None, max_length=255, description="Equality filter on name.")
    type: str | None = Field(default=None, max_length=100, description="Equality filter on type.")
    task_id: str | None = Field(default=None, max_length=64, description="Equality filter on task_id.")


class TaskListQuery(ListQuery):
    """Sort and filter fields: id, operation, status, progress, input, created_at, updated_at.
    Search fields: id, operation, status."""

    operation: Operation | None = Field(default=None, description="Equality filter on operation.")
    status: TaskStatus | None = Field(default=None, description="Equality filter on status.")
    input: str | None = Field(default=None, max_length=64, description="Equality filter on input.")


class KeyUsageCounts(BaseModel):
    """What the workers processed for a key since it was created."""

    files: int
    bytes: int
    frames: int = Field(description="Video frames processed; photos count none.")


class KeyPublic(BaseModel):
    """An API key as listings show it: never its secret, only the first characters (`prefix`)."""

    id: str = Field(examples=["key_avyrvozb9302uwhq"])
    name: str
    prefix: str = Field(description="The first characters of the secret, to tell keys apart.")
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None = Field(description="When the key was revoked; null while it works.")
    file_root: str | None = Field(
        description="The server directory its BlurIt-style paths are relative to, when one was set; null: "
        "its own folder `<id>` below the server's file root (admin keys: the whole file root)."
    )
    usage: KeyUsageCounts


class KeysPublic(BaseModel):
    count: int
    results: list[KeyPublic]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["scanner"])
    is_admin: bool = False
    file_root: str | None = Field(
        default=None,
        max_length=4096,
        description="An existing directory on the server, as an absolute path, for the key's BlurIt-style "
        "paths; it may lie outside the server's file root, but not hold its data directory. Default: the "
        "key's own folder `<id>` below the file root (admin keys: the whole file root).",
        examples=["/srv/dashcam"],
    )


class KeyCreated(BaseModel):
    """A new key with its secrets; they are shown this once and cannot be read again."""

    key: KeyPublic
    secret: str = Field(description="Send it in the x-api-key header.")
    callback_secret: str = Field(description="Signs this key's task callbacks (HMAC-SHA256).")


RequestOperation = Literal[
    "export:dataset", "export:annotations", "import:annotations", "export:backup", "import:backup"
]
RequestStatus = Literal["queued", "started", "finished", "failed"]
"""`veil.core.database.models.REQUEST_STATUSES`."""


class RequestCreated(BaseModel):
    """A background request was queued; follow it at `GET /v1/requests/{rq_id}`."""

    rq_id: str = Field(examples=["rq_avyrvozb9302uwhq"])


class RequestOperationPublic(BaseModel):
    """What a request does, as CVAT names it."""

    type: RequestOperation
    target: Literal["task", "dataset"] = Field(
        description="One task, or a dataset of several (`POST /v1/datasets/export`)."
    )
    task_id: str | None = Field(description="The task it works on; for import:backup, the task it made.")
    task_ids: list[str] | None = Field(default=None, description="A dataset's tasks, in its order.")
    format: str | None = Field(description="The annotation format's name, for exports and imports.")


class DatasetExport(BaseModel):
    """Several tasks' detections in one dataset, as a CVAT project's export; each task's items are named
    under a folder named by its id."""

    model_config = ConfigDict(extra="forbid")

    task_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=100, description="Completed tasks of yours, each once.", examples=[["tsk_a"]]
    )
    format: str = Field(max_length=100, description="As `GET /v1/formats` names it.", examples=["COCO 1.0"])
    save_images: bool = Field(default=False, description="With the photos, and video frames as JPEG.")
    media: Literal["anonymized", "original"] = Field(
        default="anonymized", description="Which photo or video the images come from."
    )
    frame_step: int = Field(default=1, ge=1, le=10_000, description="Videos: every n-th frame.")

    @field_validator("task_ids")
    @classmethod
    def _each_once(cls, task_ids: list[str]) -> list[str]:
        repeated = sorted({t for t in task_ids if task_ids.count(t) > 1})
        if repeated:
            raise ValueError(f"each task once; repeated: {', '.join(repeated)}")
        return task_ids


class RequestPublic(BaseModel):
    """A background request: an export, import or backup of a task."""

    id: str = Field(examples=["rq_avyrvozb9302uwhq"])
    status: RequestStatus
    progress: float = Field(description="From 0 to 1.")
    message: str = Field(description="Why it failed; empty otherwise.")
    operation: RequestOperationPublic
    result_url: str | None = Field(
        description="Where its result file is downloaded from, once finished (exports and backups)."
    )
    result_id: str | None = Field(
        description="What it made, once finished: the result file, or for import:backup the new task."
    )
    render_task_id: str | None = Field(
        default=None, description="import:annotations with render=true: the render task it started."
    )
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime = Field(description="When the request and its result are deleted.")


class RequestsPublic(BaseModel):
    count: int = Field(description="Requests matching the query, on every page.")
    page: int
    page_size: int
    results: list[RequestPublic]


class RequestListQuery(ListQuery):
    """Sort and filter fields: id, operation, status, task_id, format, created_at, expires_at.
    Search fields: id, operation, status, format."""

    operation: RequestOperation | None = Field(default=None, description="Equality filter on operation.")
    status: RequestStatus | None = Field(default=None, description="Equality filter on status.")
    task_id: str | None = Field(default=None, max_length=64, description="Equality filter on task_id.")


class FormatPublic(BaseModel):
    """An annotation format, named as CVAT names it."""

    name: str = Field(examples=["CVAT for video 1.1"])
    version: str = Field(examples=["1.1"])
    ext: str = Field(description="What an export is.", examples=["ZIP"])
    can_export: bool
    can_import: bool
    media: list[Literal["image", "video"]] = Field(description="The media kinds it holds annotations of.")
    tracks: bool = Field(description="It keeps track ids.")
    scores: bool = Field(description="It keeps each box's score and source.")


class FormatsPublic(BaseModel):
    """The formats of `POST /v1/tasks/{id}/dataset/export`, `.../annotations/export` and `.../annotations`."""

    results: list[FormatPublic]
