"""Callback delivery to a receiver on 127.0.0.1: signed body, retries after 5xx, giving up, and refusing
private addresses unless the operator allows them."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.helpers import RecordingQueue, readme_signature_verifier, save_image
from tests.worker.conftest import key_row, submit, task_row, upload
from veil.core.database.connection import session_scope
from veil.core.database.models import ApiKey, Task
from veil.core.settings import Settings
from veil.engine.detections import Detections
from veil.worker.callbacks import SIGNATURE_HEADER, deliver_callback, retry_delay_s, sign
from veil.worker.context import WorkerContext
from veil.worker.tasks import run_task


@dataclass
class Receiver:
    """Answers each POST with the next status in `statuses` (then 200) and keeps what it received."""

    url: str
    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="", statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers), body))
            self.send_response(state.statuses.pop(0) if state.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/veil"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def finished_task(
    context: WorkerContext,
    owner: ApiKey,
    receiver: Receiver,
    queue: RecordingQueue,
    tmp_path: Path,
    one_face: Detections,
) -> str:
    source = upload(context, owner, save_image(tmp_path / "photo.png"))
    task_id = submit(context, owner, source.id, callback_url=receiver.url)
    run_task(context, task_id)
    assert queue.callbacks == [task_id]
    return task_id


def test_delivered_with_a_signature_that_verifies(
    context: WorkerContext, owner: ApiKey, receiver: Receiver, finished_task: str
) -> None:
    assert deliver_callback(context, finished_task) is None

    [(headers, body)] = receiver.received
    secret = key_row(context, owner.id).callback_secret
    signed = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", headers[SIGNATURE_HEADER])
    assert signed is not None, headers[SIGNATURE_HEADER]
    sent_at, digest = signed.groups()
    assert abs(time.time() - int(sent_at)) < 10
    expected = hmac.new(secret.encode(), f"{sent_at}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(digest, expected)
    assert readme_signature_verifier()(headers[SIGNATURE_HEADER], body, secret)
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert (document["id"], document["status"]) == (finished_task, "completed")
    assert [file["name"] for file in document["result"]["generated_files"]] == ["photo.png", "photo.png.json"]
    delivery = task_row(context, finished_task).callback_delivery
    assert delivery is not None
    assert (delivery["state"], delivery["attempts"], delivery["response_status"]) == ("delivered", 1, 200)


def test_a_server_error_is_tried_again_with_backoff(
    context: WorkerContext, receiver: Receiver, finished_task: str
) -> None:
    receiver.statuses = [500]
    delay = deliver_callback(context, finished_task, attempt=0)
    assert delay is not None and 1.0 <= delay <= 2.0
    delivery = task_row(context, finished_task).callback_delivery
    assert delivery is not None and (delivery["state"], delivery["response_status"]) == ("retrying", 500)

    assert deliver_callback(context, finished_task, attempt=1) is None
    assert len(receiver.received) == 2
    assert receiver.received[0][1] == receiver.received[1][1]
    delivery = task_row(context, finished_task).callback_delivery
    assert delivery is not None and (delivery["state"], delivery["attempts"]) == ("delivered", 2)


def test_retries_stop_after_the_configured_number(
    context: WorkerContext, receiver: Receiver, finished_task: str
) -> None:
    receiver.statuses = [503, 503, 503]
    delays = [deliver_callback(context, finished_task, attempt=n) for n in range(3)]
    assert [delay is not None for delay in delays] == [True, True, False]
    delivery = task_row(context, finished_task).callback_delivery
    assert delivery is not None and (delivery["state"], delivery["attempts"]) == ("failed", 3)


def test_a_client_error_gives_up_at_once(
    context: WorkerContext, receiver: Receiver, finished_task: str
) -> None:
    receiver.statuses = [410]
    assert deliver_callback(context, finished_task) is None
    assert len(receiver.received) == 1
    delivery = task_row(context, finished_task).callback_delivery
    assert delivery is not None and (delivery["state"], delivery["response_status"]) == ("failed", 410)


def test_no_answer_is_tried_again(context: WorkerContext, finished_task: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with session_scope(context.sessions) as session:
        session.execute(
            update(Task).where(Task.id == finished_task).values(callback_url=f"http://127.0.0.1:{port}/")
        )
    assert deliver_callback(context, finished_task) is not None
    delivery = task_row(context, finished_task).callback_delivery
    assert delivery is not None
    assert (delivery["state"], delivery["response_status"]) == ("retrying", None)
    assert delivery["error"].startswith("ConnectError")


def test_private_addresses_are_refused_unless_allowed(
    context: WorkerContext, settings: Settings, receiver: Receiver, finished_task: str
) -> None:
    context.settings = Settings(data_dir=settings.data_dir, allow_private_callbacks=False)
    assert deliver_callback(context, finished_task) is None
    assert receiver.received == []
    delivery = task_row(context, finished_task).callback_delivery
    assert delivery is not None and delivery["state"] == "refused"
    assert "not a public address" in delivery["error"]


@pytest.mark.parametrize("attempt", [0, 3, 20])
def test_backoff_doubles_with_jitter_up_to_a_cap(attempt: int) -> None:
    ceiling = min(600.0, 2.0 * 2**attempt)
    delays = [retry_delay_s(attempt) for _ in range(50)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


BODY = b'{"id":"task_a","status":"completed"}'


@pytest.mark.parametrize(
    ("age_s", "change", "accepted"),
    [
        (0, None, True),
        (290, None, True),
        (310, None, False),  # a delivery recorded and replayed 5 minutes later
        (-310, None, False),
        (0, "body", False),
        (0, "time", False),  # the same signature under a fresher time
        (0, "secret", False),
    ],
)
def test_the_readme_receiver_accepts_only_fresh_untouched_signatures(
    age_s: int, change: str | None, accepted: bool
) -> None:
    verify = readme_signature_verifier()
    sent_at = int(time.time()) - age_s
    header = sign(BODY, "secret", sent_at)
    body = BODY.replace(b"completed", b"failed") if change == "body" else BODY
    if change == "time":
        header = header.replace(f"t={sent_at}", f"t={sent_at + 60}")

    assert verify(header, body, "other" if change == "secret" else "secret") is accepted


@pytest.mark.parametrize("header", ["", "sha256=abc", "v1=abc", "t=,v1=abc", "t=\N{SUPERSCRIPT TWO},v1=abc"])
def test_the_readme_receiver_refuses_a_header_without_a_time(header: str) -> None:
    assert readme_signature_verifier()(header, BODY, "secret") is False
