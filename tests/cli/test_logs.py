"""The log lines of `veil serve` and `veil worker`: key=value, and never a secret, a key or a URL's query."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from veil.cli.logs import configure_logging

API_KEY = "veil_kVT2uZGgHXqBRWcM22INGboaheLZwqljZ06-Z6qr7WI"
CALLBACK_SECRET = "c140f6ed89e130c8d29e5e6decfae1f6b51e8d88a2e1239f1ead85850949691b"
TOKEN = "tok-4f2a9d"
CALLBACK_URL = f"https://hooks.example.org/veil?token={TOKEN}&user=alice"


@pytest.fixture(autouse=True)
def root_logging() -> Iterator[None]:
    """Puts back the root logger that `configure_logging` replaces."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def logged(
    capsys: pytest.CaptureFixture[str], logger: str, message: str, *args: object, **kwargs: Any
) -> str:
    """What `veil serve` writes to stderr for this record."""
    configure_logging()
    logging.getLogger(logger).info(message, *args, **kwargs)
    return capsys.readouterr().err


def test_a_line_is_key_value_with_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    line = logged(capsys, "veil.cli.serve", "worker exited", extra={"slot": 0, "pid": 4242}).strip()

    assert line.endswith('level=info logger=veil.cli.serve msg="worker exited" slot=0 pid=4242')


@pytest.mark.parametrize(
    ("logger", "message", "args", "extra"),
    [
        # httpx logs every request it makes, callback deliveries included, with the whole URL.
        (
            "httpx",
            'HTTP Request: %s %s "%s %d %s"',
            ("POST", CALLBACK_URL, "HTTP/1.1", 204, "No Content"),
            {},
        ),
        # uvicorn logs each request target, query string included.
        (
            "uvicorn.access",
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5", "GET", f"/v1/x?k={API_KEY}", "1.1", 200),
            {},
        ),
        ("veil.worker.callbacks", "callback to %s failed", (CALLBACK_URL,), {}),
        # A token can sit anywhere in a callback URL, not only in its query string.
        ("httpx", "HTTP Request: POST %s", (f"https://alice:{TOKEN}@hooks.example.org/veil",), {}),
        ("httpx", "HTTP Request: POST %s", (f"https://hooks.example.org/services/T0/B0/{TOKEN}",), {}),
        ("httpx", "HTTP Request: POST %s", (f"https://hooks.example.org/veil#{TOKEN}",), {}),
        ("uvicorn.access", '"%s %s"', ("GET", f"/v1/tasks#{TOKEN}"), {}),
        ("veil.cli.serve", "key %s, secret %s", (API_KEY, CALLBACK_SECRET), {}),
        # Celery puts a task's request (its arguments) in an extra field.
        ("celery.app.trace", "Task received", (), {"data": {"args": [CALLBACK_URL, CALLBACK_SECRET]}}),
    ],
)
def test_secrets_keys_and_query_strings_never_reach_the_log(
    capsys: pytest.CaptureFixture[str],
    logger: str,
    message: str,
    args: tuple[object, ...],
    extra: dict[str, object],
) -> None:
    line = logged(capsys, logger, message, *args, extra=extra)

    for secret in (TOKEN, "user=alice", API_KEY, API_KEY[5:], CALLBACK_SECRET):
        assert secret not in line
    assert "[redacted]" in line


def test_a_traceback_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    error = ConnectionError(f"could not reach '{CALLBACK_URL}' with secret {CALLBACK_SECRET}")

    text = logged(capsys, "veil.worker.tasks", "task failed unexpectedly", exc_info=error)

    assert "ConnectionError: could not reach 'https://hooks.example.org/[redacted]'" in text
    assert TOKEN not in text
    assert CALLBACK_SECRET not in text


def test_a_url_keeps_its_host(capsys: pytest.CaptureFixture[str]) -> None:
    text = logged(capsys, "httpx", "POST %s (serving on %s)", CALLBACK_URL, "http://127.0.0.1:8000")

    assert 'msg="POST https://hooks.example.org/[redacted] (serving on http://127.0.0.1:8000)"' in text


def test_what_is_not_secret_stays_readable(capsys: pytest.CaptureFixture[str]) -> None:
    text = logged(
        capsys,
        "veil",
        "%s: why? GET %s by %s",
        "task_q0zcaornhmel5loh",
        "/v1/tasks/task_a",
        "key_e7pnw34u3p71",
    )

    assert 'msg="task_q0zcaornhmel5loh: why? GET /v1/tasks/task_a by key_e7pnw34u3p71"' in text
