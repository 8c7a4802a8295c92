"""The database tables: API keys, stored files, resumable uploads and tasks.

Every row that belongs to someone carries `owner_id`; queries filter on it so one key never sees another's
data. Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from veil.core.database.ids import new_id

__all__ = [
    "FINAL_STATUSES",
    "REQUEST_STATUSES",
    "TASK_STATUSES",
    "ApiKey",
    "BackgroundRequest",
    "Base",
    "ExpiringPath",
    "Lease",
    "StoredFile",
    "Task",
    "Upload",
    "VideoSegment",
    "WorkerBeat",
    "utc_now",
]

TASK_STATUSES = ("queued", "started", "completed", "failed", "cancelled")
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# A background request's statuses, as CVAT's requests API names them; a cancelled request is failed.
REQUEST_STATUSES = ("queued", "started", "finished", "failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored in UTC and read back timezone-aware, also on SQLite (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class ApiKey(Base):
    """A client's key. Only a SHA-256 hash of the key is stored; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("key"))
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # The first characters of the key, so a person can tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(default=False)
    # The directory its BlurIt paths are relative to, when an operator set one; None: the key's own folder
    # `<id>` below the file root (admin keys: the whole file root).
    # See `veil.core.services.keys.key_file_root`.
    file_root: Mapped[str | None] = mapped_column(String(4096), default=None)
    # Signs callbacks (HMAC-SHA256); it must be readable to sign, so it is a separate secret from the key.
    callback_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    files_processed: Mapped[int] = mapped_column(Integer, default=0)
    bytes_processed: Mapped[int] = mapped_column(BigInteger, default=0)
    frames_processed: Mapped[int] = mapped_column(Integer, default=0)


class StoredFile(Base):
    """An uploaded or generated file; its bytes live in storage under `storage_key`."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("file"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    storage_key: Mapped[str] = mapped_column(String(400))
    # The task that generated this file; None for uploads.
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), index=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(default=None, index=True)


class Task(Base):
    """One operation on one input, run by a worker.

    `api` says which API created it: "v1" tasks take `input` = {"file": id} or {"task": id}; "blurit"
    tasks keep the BlurIt request body (input_image, output_json, ...) in `input`.
    """

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("task"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    api: Mapped[str] = mapped_column(String(16), default="v1")
    operation: Mapped[str] = mapped_column(String(32), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    # The broker queue its messages go to (`veil.core.queue.route`): by media kind and requested device.
    queue: Mapped[str] = mapped_column(String(16), default="photo", server_default="photo")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    callback_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    # How the callback went: {"state": "pending"|"retrying"|"delivered"|"failed"|"refused", "attempts",
    # "response_status", "error", "at"}; None until the task finished with a callback_url.
    callback_delivery: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    # Refreshed by the worker while it runs the task; a stale one means the worker died.
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkerBeat(Base):
    """A worker process that is alive: it refreshes `seen_at` every few seconds (readiness, monitoring)."""

    __tablename__ = "worker_beats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    seen_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class ExpiringPath(Base):
    """A BlurIt output under the file root to delete at `expires_at` (its `lifespan` after the task)."""

    __tablename__ = "expiring_paths"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Relative to `root`, as the client gave it; reached again, without following links, when it is deleted.
    path: Mapped[str] = mapped_column(String(2000))
    # The owner key's file root when the task ran; None in rows made before keys had their own roots, which
    # are relative to the whole file root.
    root: Mapped[str | None] = mapped_column(String(4096), default=None)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), default=None)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Upload(Base):
    """A resumable (TUS) upload: its bytes so far live in storage under `storage_key`; once `offset` reaches
    `length` they become the stored file `file_id`."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("upload"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_key: Mapped[str] = mapped_column(String(400))
    # "file": a photo, video or render document, which becomes a stored file; "request": the input of a
    # background request (a backup, annotations), kept as appended until a request takes it.
    purpose: Mapped[str] = mapped_column(String(16), default="file", server_default="file")
    # The stored file made of the complete upload; None until then, and again once that file is deleted.
    file_id: Mapped[str | None] = mapped_column(
        ForeignKey("files.id", ondelete="SET NULL"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Lease(Base):
    """A named lock that expires: one scheduler runs a periodic job, one request appends to an upload.

    The holder renews it while working; one that died loses it at `expires_at`
    (`veil.core.database.leases`)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class VideoSegment(Base):
    """One segment of a long video that several workers process at once (`veil.worker.segments`): which
    frames it covers, and how its own run goes. It belongs to the task that processes the whole video, and
    runs only while that task is `started`."""

    __tablename__ = "video_segments"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # The `veil.engine.video.FrameRange` it covers, as a dict.
    frames: Mapped[dict[str, Any]] = mapped_column()
    # The whole video in storage, which every worker reads its segment from, and the file suffix the
    # engine reads it under (it picks the container type by it).
    input_key: Mapped[str] = mapped_column(String(400))
    input_suffix: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # `host:pid` of the worker process running it (or that ran it last).
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the last completed attempt stored: its video (None when only detecting) and its report.
    media_key: Mapped[str | None] = mapped_column(String(400), default=None)
    report_key: Mapped[str | None] = mapped_column(String(400), default=None)
    # {title, detail} of the failure that ended it, as a task's.
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class BackgroundRequest(Base):
    """An export, import or backup run in the background on one task, or an export of several tasks as one
    dataset (`veil.core.services.requests`; the tasks in `parameters["task_ids"]`), followed at
    `/v1/requests/{id}` as CVAT's requests are. Its result is a generated file (an export or backup), a
    document stored with the task (an annotations import) or a new task (a restored backup)."""

    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("rq"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    # "export:dataset", "export:annotations", "import:annotations", "export:backup" or "import:backup".
    operation: Mapped[str] = mapped_column(String(32), index=True)
    # The task it works on; for `import:backup`, the task it made (None until then); None for a dataset.
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), index=True, default=None)
    format: Mapped[str | None] = mapped_column(String(64), default=None)
    # What the request asked for beyond the format (save_images, media, frame_step, render), and where its
    # uploaded input waits in storage (`input_key`) until it ran.
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    queue: Mapped[str] = mapped_column(String(16), default="photo")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(2000), default="")
    result_file_id: Mapped[str | None] = mapped_column(
        ForeignKey("files.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Past it the request is gone, as its result file is: the files' lifespan after it was made, then
    # after it finished.
    expires_at: Mapped[datetime] = mapped_column(index=True)
