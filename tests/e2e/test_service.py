"""End to end: a client talks HTTP to `veil serve`, whose worker process runs the shipped models."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import av
import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.e2e.conftest import Service
from tests.engine.video_factory import make_video
from tests.helpers import readme_signature_verifier
from tests.photo_factory import damaged_pixels_png

pytestmark = pytest.mark.weights

FACE_XYXY = (180, 60, 270, 178)  # the astronaut's face in the 512x512 photo, measured by hand


def astronaut_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def upload(service: Service, headers: dict[str, str], name: str, content: bytes) -> dict[str, Any]:
    response = httpx.post(f"{service.url}/v1/files", headers=headers, files={"file": (name, content)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def submit(service: Service, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{service.url}/v1/tasks", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def face_sharpness(rgb: np.ndarray) -> float:
    x1, y1, x2, y2 = FACE_XYXY
    inner = rgb[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20].astype(int)
    return float(np.abs(np.diff(inner, axis=1)).mean())


@pytest.fixture(scope="module")
def alice(service: Service) -> dict[str, str]:
    return service.new_key("alice")[0]


def test_a_photo_is_uploaded_anonymized_and_downloaded(service: Service, alice: dict[str, str]) -> None:
    """GIVEN the astronaut photo uploaded
    WHEN an anonymize task runs on it
    THEN the downloaded output has the face blurred, the rest kept, and a detections JSON beside it."""
    original = astronaut_jpeg()
    file = upload(service, alice, "astronaut.jpg", original)
    task = service.wait_for_task(
        alice, submit(service, alice, {"operation": "anonymize", "input": file["id"]})["id"]
    )

    assert task["status"] == "completed", task
    assert task["result"]["detections"]["face"] >= 1
    outputs = {generated["name"]: generated for generated in task["result"]["generated_files"]}
    assert set(outputs) == {"astronaut.jpg", "astronaut.jpg.json"}
    image_bytes = httpx.get(f"{service.url}/v1/files/{outputs['astronaut.jpg']['id']}/content", headers=alice)
    report = httpx.get(f"{service.url}/v1/files/{outputs['astronaut.jpg.json']['id']}/content", headers=alice)
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"))
    after = np.asarray(Image.open(io.BytesIO(image_bytes.content)).convert("RGB"))
    assert face_sharpness(after) < face_sharpness(before) / 2, "the face is not blurred"
    assert np.abs(after[400:, 400:].astype(int) - before[400:, 400:].astype(int)).mean() < 3
    assert report.json()["schema"] == "veil.detections/1"


def test_another_key_sees_none_of_it(service: Service, alice: dict[str, str]) -> None:
    file = upload(service, alice, "private.jpg", astronaut_jpeg())
    task = submit(service, alice, {"operation": "detect", "input": file["id"]})
    bob = service.new_key("bob")[0]

    for path in (f"/v1/files/{file['id']}", f"/v1/files/{file['id']}/content", f"/v1/tasks/{task['id']}"):
        assert httpx.get(f"{service.url}{path}", headers=bob).status_code == 404, path
    listed = httpx.get(f"{service.url}/v1/tasks", headers=bob).json()
    assert listed["count"] == 0


def test_blurit_file_task_writes_under_the_file_root(service: Service, alice: dict[str, str]) -> None:
    # A key's paths are relative to its own folder below the file root.
    root = service.file_root / httpx.get(f"{service.url}/v1/keys/me", headers=alice).json()["id"]
    (root / "in").mkdir(parents=True, exist_ok=True)
    (root / "in" / "portrait.jpg").write_bytes(astronaut_jpeg())
    body = {
        "input_image": {"protocol": "file", "path": "in/portrait.jpg"},
        "output_image": {"protocol": "file", "path": "out/portrait_blurred.jpg"},
        "output_json": {"protocol": "file", "path": "out/portrait.json"},
    }
    created = httpx.post(f"{service.url}/api/task/file", headers=alice, json=body)
    assert created.status_code == 200, created.text
    task_id = created.json()["task_id"]

    deadline = time.monotonic() + 60
    while (task := httpx.get(f"{service.url}/api/task/{task_id}", headers=alice).json())["status"] not in {
        "completed",
        "failed",
    }:
        assert time.monotonic() < deadline, task
        time.sleep(0.2)

    assert task["status"] == "completed", task
    assert task["result"]["nb_files"] == {"IMAGE": 1, "VIDEO": 0}
    assert task["result"]["size"]["IMAGE"] == (root / "in" / "portrait.jpg").stat().st_size
    blurred = np.asarray(Image.open(root / "out" / "portrait_blurred.jpg").convert("RGB"))
    assert face_sharpness(blurred) < face_sharpness(np.asarray(data.astronaut())) / 2
    assert json.loads((root / "out" / "portrait.json").read_text())["schema"] == "veil.detections/1"


@pytest.mark.parametrize("path", ["../escape.jpg", "/etc/passwd", "in/../../escape.jpg"])
def test_blurit_paths_cannot_leave_the_file_root(service: Service, alice: dict[str, str], path: str) -> None:
    body = {
        "input_image": {"protocol": "file", "path": path},
        "output_json": {"protocol": "file", "path": "x.json"},
    }
    response = httpx.post(f"{service.url}/api/task/file", headers=alice, json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "input_image.path" in response.json()["errors"]


def test_a_bad_json_logic_filter_is_a_clear_422(service: Service, alice: dict[str, str]) -> None:
    response = httpx.get(
        f"{service.url}/v1/tasks",
        headers=alice,
        params={"filter": json.dumps({"regex": [{"var": "id"}, ".*"]})},
    )

    assert response.status_code == 422
    assert "filter" in response.json()["errors"]


def test_a_corrupt_upload_fails_its_own_task_and_others_go_on(
    service: Service, alice: dict[str, str]
) -> None:
    """A photo cut short is refused at upload; one whose damage only decoding shows fails its own task."""
    cut = httpx.post(
        f"{service.url}/v1/files", headers=alice, files={"file": ("cut.jpg", astronaut_jpeg()[:2000])}
    )
    assert cut.status_code == 422 and "cut short" in cut.json()["detail"]
    damaged = upload(service, alice, "damaged.png", damaged_pixels_png())
    bad = submit(service, alice, {"operation": "detect", "input": damaged["id"]})
    good = submit(
        service,
        alice,
        {"operation": "detect", "input": upload(service, alice, "ok.jpg", astronaut_jpeg())["id"]},
    )

    failed, completed = service.wait_for_task(alice, bad["id"]), service.wait_for_task(alice, good["id"])

    assert failed["status"] == "failed"
    assert failed["error"]["detail"], failed
    assert completed["status"] == "completed"


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver.received
    server.shutdown()
    server.server_close()


def test_a_signed_callback_reaches_the_receiver_and_no_secret_reaches_the_log(
    service: Service, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    """GIVEN a key, a callback URL with tokens in its user and password, path, query string and fragment,
    and the key's callback secret
    WHEN a task calls back, and a client sends its key in a query string
    THEN the receiver gets a signature that verifies, and the server's log holds none of these."""
    url, received = receiver
    tokens = ["user-e2e-61bd", "pass-e2e-93ce", "path-e2e-2a7f", "tok-e2e-4f2a9d", "frag-e2e-c50e"]
    user_and_password = f"//{tokens[0]}:{tokens[1]}@"
    callback_url = url.replace("//", user_and_password) + f"/{tokens[2]}?token={tokens[3]}#{tokens[4]}"
    headers, secret = service.new_key("hooked")
    file = upload(service, headers, "cb.jpg", astronaut_jpeg())
    request = {"operation": "detect", "input": file["id"], "callback_url": callback_url}
    task = submit(service, headers, request)
    service.wait_for_task(headers, task["id"])
    httpx.get(f"{service.url}/v1/tasks?key={headers['x-api-key']}", headers=headers)

    deadline = time.monotonic() + 20
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert received, "no callback arrived"
    sent_headers, body = received[0]
    signature = {k.lower(): v for k, v in sent_headers.items()}["x-veil-signature"]
    assert readme_signature_verifier()(signature, body, secret), signature
    assert json.loads(body)["id"] == task["id"]
    assert json.loads(body)["status"] == "completed"
    log = wait_for_log(service, "veil.deliver_callback", "succeeded")
    for leaked in (*tokens, headers["x-api-key"], secret):
        assert leaked not in log
    assert "http://127.0.0.1:" in log and "/[redacted]" in log, "the delivery was logged, only its host"


def wait_for_log(service: Service, *words: str, timeout_s: float = 20.0) -> str:
    """The server's log once a line holds all of `words`."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = (service.data_dir / "serve.log").read_text()
        if any(all(word in line for word in words) for line in log.splitlines()):
            return log
        assert time.monotonic() < deadline, f"no log line with {words} in {timeout_s} s"
        time.sleep(0.2)


def test_a_worker_killed_mid_video_loses_nothing(
    service: Service, alice: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN a video task running in the worker
    WHEN the worker process is killed with SIGKILL
    THEN `veil serve` starts a new worker, the task runs again and completes with one set of outputs."""
    clip = make_video(tmp_path / "walk.mp4", frames=400)
    file = upload(service, alice, "walk.mp4", clip.path.read_bytes())
    parameters = {"detectors": ["face"], "detect_every": 1}
    task = submit(service, alice, {"operation": "anonymize", "input": file["id"], "parameters": parameters})

    deadline = time.monotonic() + 60
    while (seen := httpx.get(f"{service.url}/v1/tasks/{task['id']}", headers=alice).json())["progress"] < 0.1:
        assert seen["status"] in {"queued", "started"} and time.monotonic() < deadline, seen
        time.sleep(0.05)
    for pid in service.worker_pids():
        os.kill(pid, signal.SIGKILL)
    finished = service.wait_for_task(alice, task["id"], timeout_s=120)

    assert finished["status"] == "completed", finished
    names = sorted(generated["name"] for generated in finished["result"]["generated_files"])
    assert names == ["walk.mp4", "walk.mp4.json"]
    output = next(g for g in finished["result"]["generated_files"] if g["name"] == "walk.mp4")
    content = httpx.get(f"{service.url}/v1/files/{output['id']}/content", headers=alice).content
    with av.open(io.BytesIO(content)) as container:
        assert sum(1 for _ in container.decode(video=0)) == clip.frame_count


def test_concurrent_uploads_and_submissions_all_land(service: Service) -> None:
    """GIVEN 16 clients at once, each uploading a photo and submitting a task
    THEN every request succeeds and the key lists exactly those files and tasks (SQLite in WAL mode)."""
    headers = service.new_key("crowd")[0]
    photo = astronaut_jpeg()

    def one_client(index: int) -> str:
        file = upload(service, headers, f"crowd-{index}.jpg", photo)
        return str(submit(service, headers, {"operation": "detect", "input": file["id"]})["id"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        task_ids = set(pool.map(one_client, range(16)))

    listed = httpx.get(f"{service.url}/v1/tasks", headers=headers, params={"page_size": 100}).json()
    files = httpx.get(f"{service.url}/v1/files", headers=headers, params={"page_size": 100}).json()
    assert len(task_ids) == 16
    assert {task["id"] for task in listed["results"]} == task_ids
    assert files["count"] == 16
