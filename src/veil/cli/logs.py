"""Logging for the long-running commands (`veil serve`, `veil worker`): one line per record, as key=value.

    time=2025-01-31T12:00:00.123Z level=warning logger=veil.cli.serve msg="worker exited" slot=0 pid=4242

Fields given with `extra={...}` become keys of their own, so lines can be searched and parsed without
regular expressions. Callers log key ids and names, not secrets; as a second line of defence each field and
traceback goes through `redact` before it is quoted and written: everything of an absolute URL after its
host and port (callback URLs carry tokens in their user and password, path, query or fragment; httpx logs
each URL it requests), the query string of a request target (uvicorn logs them), anything shaped like an API
key and any long hex string (callback secrets, key hashes) become `[redacted]`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

__all__ = ["KeyValueFormatter", "configure_logging", "redact"]

# Attributes every LogRecord has; whatever else a record carries came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# uvicorn repeats its message with terminal colours in this field.
_IGNORED_ATTRIBUTES = frozenset({"color_message"})


REDACTED = "[redacted]"
# An absolute URL: its scheme and host stay; user and password are dropped, and what follows the host is
# replaced whole, since a webhook's token can be any path segment (`/services/T0/B0/XXXX`), not only a query.
_ABSOLUTE_URL = re.compile(r"""\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#@"'<>]*@)?([^\s/?#"'<>]*)([^\s"'<>]*)""")
# A query string or fragment after a request target (`GET /v1/tasks?key=...`): up to white space, a quote
# or an angle bracket. Prose question marks do not follow a path, so they stay.
_QUERY = re.compile(r"""(/[^\s?#"'<>]*)([?#])[^\s"'<>]*""")
_API_KEY = re.compile(r"veil_[A-Za-z0-9_-]{16,}")
_LONG_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")


def redact(text: str) -> str:
    """`text` with no more of a URL than its scheme and host, no query string or fragment of a request
    target, no API key and no long hex string (callback secrets)."""
    text = _ABSOLUTE_URL.sub(_url_origin, text)
    text = _QUERY.sub(rf"\1\2{REDACTED}", text)
    text = _API_KEY.sub(f"veil_{REDACTED}", text)
    return _LONG_HEX.sub(REDACTED, text)


def _url_origin(match: re.Match[str]) -> str:
    scheme, user, host, rest = match.groups()
    return f"{scheme}{host}/{REDACTED}" if user or rest.strip("/") else f"{scheme}{host}{rest}"


def _value(value: object) -> str:
    text = redact(str(value))
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
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def configure_logging(level: int = logging.INFO) -> None:
    """Sends every logger's records (ours, uvicorn's, Celery's) to stderr as key=value lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
