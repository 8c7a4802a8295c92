"""Logging for the long-running commands (`veil serve`, `veil worker`): one line per record, as key=value.

    time=2025-01-31T12:00:00.123Z level=warning logger=veil.cli.serve msg="worker exited" slot=0 pid=4242

Fields given with `extra={...}` become keys of their own, so lines can be searched and parsed without
regular expressions. Nothing here ever receives an API key: callers log key ids and names, not secrets.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

__all__ = ["KeyValueFormatter", "configure_logging"]

# Attributes every LogRecord has; whatever else a record carries came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# uvicorn repeats its message with terminal colours in this field.
_IGNORED_ATTRIBUTES = frozenset({"color_message"})


def _value(value: object) -> str:
    text = str(value)
    if not text or any(char in text for char in ' ="\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    """Formats a record as `time=... level=... logger=... msg=... key=value...` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        fields: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and name not in _IGNORED_ATTRIBUTES:
                fields[name] = value
        line = " ".join(f"{name}={_value(value)}" for name, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: int = logging.INFO) -> None:
    """Sends every logger's records (ours, uvicorn's, Celery's) to stderr as key=value lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
