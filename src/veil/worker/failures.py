"""What a client reads when a task (or one segment of its video) fails: `{title, detail}` from the
exception that ended the run."""

from __future__ import annotations

import errno
import logging

from celery.exceptions import SoftTimeLimitExceeded

from veil.core.safety.paths import PathOutsideRootError
from veil.core.settings import Settings
from veil.engine.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    ModelError,
    OutputError,
    SizeMismatchError,
    UnsupportedMediaError,
    VeilError,
)
from veil.worker.lifecycle import TaskFailure
from veil.worker.options import InvalidParametersError

__all__ = ["describe_failure"]

log = logging.getLogger(__name__)

# Most specific first: the first match names the failure.
_TITLES: tuple[tuple[type[Exception], str], ...] = (
    (UnsupportedMediaError, "Unsupported media"),
    (CorruptMediaError, "Corrupt media"),
    (MediaTooLargeError, "Media too large"),
    (MediaError, "Unreadable media"),
    (OutputError, "Output not written"),
    (ModelError, "Detector failed"),
    (SizeMismatchError, "Detections do not match the input"),
    (VeilError, "Processing failed"),
    (InvalidParametersError, "Invalid parameters"),
    (PathOutsideRootError, "Path outside the file root"),
)


def describe_failure(exc: Exception, settings: Settings) -> dict[str, str]:
    """{title, detail} for the client: the engine's one-line message for media and output problems, a
    plain sentence for a full disk or a time limit, and a generic one (with the traceback logged) for
    anything unexpected."""
    if _disk_full(exc):
        return {
            "title": "Disk full",
            "detail": "the disk is full, so the output could not be written; free space and submit again",
        }
    if isinstance(exc, TaskFailure):
        return {"title": exc.title, "detail": exc.detail}
    if isinstance(exc, SoftTimeLimitExceeded):
        return {
            "title": "Time limit exceeded",
            "detail": f"the task ran longer than the limit of {settings.task_time_limit_s} s",
        }
    for kind, title in _TITLES:
        if isinstance(exc, kind):
            return {"title": title, "detail": _one_line(str(exc), settings)}
    log.error("task failed unexpectedly", exc_info=exc)
    return {"title": "Internal error", "detail": "the worker failed unexpectedly; its log has the details"}


def _disk_full(exc: BaseException) -> bool:
    """True when `exc` or an error it was raised from is ENOSPC (the engine wraps OS errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _one_line(message: str, settings: Settings) -> str:
    """The first line of an engine message, without the server's own directories."""
    for root in (settings.storage_dir, settings.file_root_dir):
        message = message.replace(f"{root}/", "")
    return message.splitlines()[0] if message else "no details"
