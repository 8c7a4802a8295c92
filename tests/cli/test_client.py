"""`veil task ...` against the real API served by uvicorn on a local port.

No worker runs here: a test finishes a task by writing its rows and files as the worker would.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from tests.cli.conftest import LiveServer, PatchFailure, failing_patches, serving
from tests.helpers import save_image
from tests.server.conftest import make_key
from veil.cli import client as client_module
from veil.cli.app import app
from veil.cli.client import VeilClient, parse_parameters
from veil.core.database.connection import session_scope
from veil.core.database.models import StoredFile, Task, Upload, utc_now
from veil.core.settings import Settings
from veil.core.storage import LocalStorage

runner = CliRunner(env={"COLUMNS": "200"})


def veil(server: LiveServer, api_key: str, *args: str) -> Result:
    return runner.invoke(app, ["task", *args], env={"VEIL_URL": server.url, "VEIL_API_KEY": api_key})


def submitted(result: Result) -> list[str]:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.stdout.split()


def get(server: LiveServer, api_key: str, path: str) -> dict[str, object]:
    response = httpx.get(server.url + path, headers={"x-api-key": api_key})
    assert response.status_code == 200, response.text
    return dict(response.json())


def complete(server: LiveServer, task_id: str, outputs: dict[str, bytes]) -> None:
    """What the worker leaves behind a completed task: generated files in storage and rows for them."""
    storage = LocalStorage(server.settings.storage_dir)
    with session_scope(server.sessions) as session:
        task = session.get(Task, task_id)
        assert task is not None
        for name, content in outputs.items():
            key = f"{task.owner_id}/{task_id}/1/{name}"
            storage.path(key).parent.mkdir(parents=True, exist_ok=True)
            storage.path(key).write_bytes(content)
            media_type = "application/json" if name.endswith(".json") else "image/png"
            session.add(
                StoredFile(
                    owner_id=task.owner_id, name=name, media_type=media_type, size=len(content),
                    properties={"size": len(content)}, storage_key=key, task_id=task_id,
                )
            )  # fmt: skip
        task.status, task.progress, task.finished_at = "completed", 1.0, utc_now()
        task.result = {"detections": {"face": 1}}


def fail(server: LiveServer, task_id: str) -> None:
    with session_scope(server.sessions) as session:
        task = session.get(Task, task_id)
        assert task is not None
        task.status, task.finished_at = "failed", utc_now()
        task.error = {"title": "Unreadable input", "detail": "the video stream is truncated at frame 12"}


def later(server: LiveServer, count: int, finish: Callable[[str], None]) -> threading.Thread:
    """Finishes each task once `count` have been queued, after the client had time to see them queued."""

    def run() -> None:
        deadline = time.monotonic() + 10
        while len(server.queue.task_ids) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        for task_id in list(server.queue.task_ids):
            finish(task_id)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """a.jpg, sub/b.png and a text file, in a directory."""
    folder = tmp_path / "photos"
    save_image(folder / "a.jpg")
    save_image(folder / "sub" / "b.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_submit_uploads_every_photo_below_a_directory(
    live_server: LiveServer, api_key: str, photos: Path
) -> None:
    result = veil(
        live_server,
        api_key,
        "submit",
        str(photos),
        "--param",
        "threshold=0.4",
        "--param",
        "styles.face.method=pixelate",
    )

    assert result.exit_code == 0, result.output
    task_ids = submitted(result)
    assert task_ids == live_server.queue.task_ids and len(task_ids) == 2
    assert f"skipped {photos / 'notes.txt'}" in result.stderr
    names = []
    for task_id in task_ids:
        task = get(live_server, api_key, f"/v1/tasks/{task_id}")
        parameters = task["parameters"]
        assert isinstance(parameters, dict)
        assert (task["operation"], parameters["threshold"]) == ("anonymize", 0.4)
        assert parameters["styles"]["face"]["method"] == "pixelate"
        names.append(get(live_server, api_key, f"/v1/files/{parameters['input']}")["name"])
    assert names == ["a.jpg", "b.png"]


def test_submit_json_prints_a_line_per_task(live_server: LiveServer, api_key: str, photos: Path) -> None:
    result = veil(live_server, api_key, "submit", str(photos / "a.jpg"), "--operation", "detect", "--json")

    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["source"] == str(photos / "a.jpg")
    assert (record["task"]["operation"], record["task"]["status"]) == ("detect", "queued")
    assert live_server.queue.task_ids == [record["task"]["id"]]


def test_a_refused_file_is_reported_and_the_others_go_on(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    (tmp_path / "fake.jpg").write_text("a text file with a photo's name")
    save_image(tmp_path / "real.png")

    result = veil(live_server, api_key, "submit", str(tmp_path / "fake.jpg"), str(tmp_path / "real.png"))

    assert result.exit_code == 1
    assert len(submitted(result)) == 1
    [failure] = [line for line in result.stderr.splitlines() if line.startswith("failed")]
    assert failure.startswith(f"failed {tmp_path / 'fake.jpg'}: error 415: ")


def test_invalid_parameters_show_the_field_and_why(
    live_server: LiveServer, api_key: str, photos: Path
) -> None:
    result = veil(live_server, api_key, "submit", str(photos / "a.jpg"), "--param", "threshold=7")

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-2] == "error 422: The request has invalid fields: parameters.threshold."
    assert lines[-1].startswith("  parameters.threshold: Input should be less than 1")


def test_wait_shows_each_task_to_its_end_and_fails_if_one_failed(
    live_server: LiveServer, api_key: str, photos: Path
) -> None:
    first, second = submitted(veil(live_server, api_key, "submit", str(photos)))

    def finish(task_id: str) -> None:
        if task_id == first:
            complete(live_server, task_id, {})
        else:
            fail(live_server, task_id)

    finisher = later(live_server, 2, finish)

    result = veil(live_server, api_key, "wait", first, second, "--interval", "0.05")
    finisher.join()

    assert result.exit_code == 1
    assert f"{second} failed: the video stream is truncated at frame 12" in result.stderr
    assert first not in result.stderr.split("failed")[-1]


def test_submit_wait_exits_0_when_every_task_completed(
    live_server: LiveServer, api_key: str, photos: Path
) -> None:
    finisher = later(live_server, 2, lambda task_id: complete(live_server, task_id, {}))

    result = veil(live_server, api_key, "submit", str(photos), "--wait", "--interval", "0.05")
    finisher.join()

    assert result.exit_code == 0, result.output
    assert len(submitted(result)) == 2


def test_download_writes_every_generated_file(
    live_server: LiveServer, api_key: str, photos: Path, tmp_path: Path
) -> None:
    [task_id] = submitted(veil(live_server, api_key, "submit", str(photos / "a.jpg")))
    outputs = {"a.jpg": b"\xff\xd8 anonymized bytes" * 10_000, "a.jpg.json": b'{"detections": []}'}
    complete(live_server, task_id, outputs)

    result = veil(live_server, api_key, "download", task_id, "-o", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(tmp_path / "out" / name) for name in outputs]
    assert {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()} == outputs


def test_download_of_an_unfinished_task_fails(
    live_server: LiveServer, api_key: str, photos: Path, tmp_path: Path
) -> None:
    [task_id] = submitted(veil(live_server, api_key, "submit", str(photos / "a.jpg")))

    result = veil(live_server, api_key, "download", task_id, "-o", str(tmp_path / "out"))

    assert result.exit_code == 1
    assert f"task {task_id} is queued" in result.stderr
    assert not any((tmp_path / "out").iterdir())


def test_list_filters_by_status_and_json_logic(live_server: LiveServer, api_key: str, photos: Path) -> None:
    done, waiting = submitted(veil(live_server, api_key, "submit", str(photos)))
    complete(live_server, done, {})

    by_status = veil(live_server, api_key, "list", "--status", "completed", "--json")
    by_filter = veil(live_server, api_key, "list", "--filter", '{"==": [{"var": "status"}, "queued"]}')
    bad_filter = veil(live_server, api_key, "list", "--filter", '{"regex": [{"var": "status"}, "q.*"]}')

    assert by_status.exit_code == 0, by_status.output
    answer = json.loads(by_status.stdout)
    assert (answer["count"], [task["id"] for task in answer["results"]]) == (1, [done])
    assert by_filter.exit_code == 0, by_filter.output
    assert waiting in by_filter.stdout and done not in by_filter.stdout
    assert "1 task in all" in by_filter.stderr
    assert bad_filter.exit_code == 1
    assert bad_filter.stderr.startswith("error 422: ")


def test_cancel(live_server: LiveServer, api_key: str, photos: Path) -> None:
    [task_id] = submitted(veil(live_server, api_key, "submit", str(photos / "a.jpg")))

    first = veil(live_server, api_key, "cancel", task_id)
    again = veil(live_server, api_key, "cancel", task_id)

    assert (first.exit_code, first.stdout) == (0, f"{task_id} cancelled\n")
    assert get(live_server, api_key, f"/v1/tasks/{task_id}")["status"] == "cancelled"
    assert again.exit_code == 1
    assert again.stderr.startswith("error 409: ")


def test_status_prints_the_task(live_server: LiveServer, api_key: str, photos: Path) -> None:
    [task_id] = submitted(veil(live_server, api_key, "submit", str(photos / "a.jpg")))

    result = veil(live_server, api_key, "status", task_id)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == get(live_server, api_key, f"/v1/tasks/{task_id}")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["status", "task_nope"], "error 404: Task with id task_nope not found.\n"),
        (["wait", "task_nope"], "error 404: Task with id task_nope not found.\n"),
        (["cancel", "task_nope"], "error 404: Task with id task_nope not found.\n"),
    ],
)
def test_api_errors_are_one_line(
    live_server: LiveServer, api_key: str, args: list[str], expected: str
) -> None:
    result = veil(live_server, api_key, *args)

    assert (result.exit_code, result.stderr) == (1, expected)


def test_a_wrong_key_is_refused(live_server: LiveServer) -> None:
    result = veil(live_server, "veil_notakey", "list")

    assert (result.exit_code, result.stderr) == (1, "error 401: The API key is unknown or revoked.\n")


def test_an_unreachable_server_is_named(veil_env: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: connection refused

        result = runner.invoke(app, ["task", "status", "task_x", "--url", url, "--api-key", "veil_x"])

    assert result.exit_code == 1
    assert result.stderr.startswith(f"cannot reach Veil at {url}: ")


def test_usage_errors_exit_2(veil_env: Settings, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VEIL_API_KEY", raising=False)

    no_key = runner.invoke(app, ["task", "list"])
    bad_param = runner.invoke(app, ["task", "submit", str(photos), "--param", "threshold", "--api-key", "k"])
    missing = runner.invoke(app, ["task", "submit", str(photos / "missing.jpg"), "--api-key", "k"])

    assert (no_key.exit_code, bad_param.exit_code, missing.exit_code) == (2, 2, 2)
    assert "VEIL_API_KEY" in no_key.stderr


def test_a_rate_limited_batch_waits_and_goes_on(veil_env: Settings, photos: Path) -> None:
    """GIVEN a limit of 3 requests a second WHEN 2 files are submitted (4 requests) THEN the 4th waits for
    Retry-After and both tasks are created."""
    settings = veil_env.model_copy(update={"rate_limit": "3/second"})
    with serving(settings) as server:
        key = make_key(server.sessions)["x-api-key"]
        started = time.monotonic()
        result = veil(server, key, "submit", str(photos))
        elapsed = time.monotonic() - started

    assert result.exit_code == 0, result.output
    assert len(submitted(result)) == 2
    assert elapsed >= 0.5


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([], {}),
        (["threshold=0.4", "draw=true"], {"threshold": 0.4, "draw": True}),
        (['detectors=["face"]', "codec=libx264"], {"detectors": ["face"], "codec": "libx264"}),
        (
            ["styles.face.method=fill", "styles.face.color=#000000"],
            {"styles": {"face": {"method": "fill", "color": "#000000"}}},
        ),
        (["name=a=b"], {"name": "a=b"}),
    ],
)
def test_parse_parameters(specs: list[str], expected: dict[str, object]) -> None:
    assert parse_parameters(specs) == expected


@pytest.mark.parametrize("spec", ["threshold", "=1", "styles..method=fill", "a.b=1 a.b.c=2"])
def test_parse_parameters_refuses(spec: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_parameters(spec.split(" "))


def test_list_shows_each_tasks_input_file_name(live_server: LiveServer, api_key: str, photos: Path) -> None:
    """GIVEN tasks on a.jpg and sub/b.png, and a task chained on the first
    WHEN `veil task list` prints in an 80-column terminal
    THEN each row names its input file (the chained one its input task's), next to an uncut id."""
    on_a, on_b = submitted(veil(live_server, api_key, "submit", str(photos)))
    complete(live_server, on_a, {"a.jpg": b"\xff\xd8 anonymized"})
    chained = httpx.post(
        f"{live_server.url}/v1/tasks",
        headers={"x-api-key": api_key},
        json={"operation": "anonymize", "input": on_a},
    ).json()["id"]

    result = runner.invoke(
        app, ["task", "list"], env={"VEIL_URL": live_server.url, "VEIL_API_KEY": api_key, "COLUMNS": "80"}
    )

    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line.split()[3] for line in result.stdout.splitlines() if "task_" in line}
    assert rows == {on_a: "a.jpg", on_b: "b.png", chained: "a.jpg"}
    assert "3 tasks in all" in result.stderr


CHUNK = 64 * 1024


@pytest.fixture
def backup_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """200 KiB of random bytes, which resumable uploads send in 64 KiB chunks, resuming without waiting."""
    monkeypatch.setattr(client_module, "RESUMABLE_CHUNK_BYTES", CHUNK)
    monkeypatch.setattr(client_module, "RESUME_DELAYS_S", (0.0, 0.0, 0.0))
    path = tmp_path / "backup.zip"
    path.write_bytes(random.Random(11).randbytes(200 * 1024))
    return path


@pytest.mark.parametrize(
    ("how", "patch_offsets"),
    [
        # Half of the second chunk reached the server before the connection dropped: it goes on from there.
        ("dropped", [0, CHUNK, CHUNK + CHUNK // 2, 2 * CHUNK + CHUNK // 2]),
        ("503", [0, CHUNK, CHUNK, 2 * CHUNK, 3 * CHUNK]),
    ],
)
def test_a_resumable_upload_goes_on_from_the_servers_offset_after_a_failed_chunk(
    live_server: LiveServer,
    api_key: str,
    backup_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: PatchFailure,
    patch_offsets: list[int],
) -> None:
    """GIVEN a 200 KiB file sent in 64 KiB chunks
    WHEN the second PATCH loses its connection halfway through (or the server answers it 503)
    THEN the client asks the server's offset and goes on from it, and the server holds exactly the file."""
    sent = failing_patches(monkeypatch, {2}, how)
    shown: list[tuple[int, int]] = []

    with VeilClient(live_server.url, api_key) as client:
        upload_id = client.upload_resumable(
            backup_file, purpose="request", progress=lambda held, size: shown.append((held, size))
        )

    assert sent == patch_offsets
    size = backup_file.stat().st_size
    assert shown == sorted(shown), "it only goes forward"
    assert sorted(set(shown)) == [(held, size) for held in sorted({*patch_offsets[1:], size})]
    with live_server.sessions() as session:
        upload = session.get(Upload, upload_id)
    assert upload is not None
    content = backup_file.read_bytes()
    assert (upload.offset, upload.length, upload.purpose, upload.filename) == (
        len(content),
        len(content),
        "request",
        "backup.zip",
    )
    storage = LocalStorage(live_server.settings.storage_dir)
    assert storage.read_appended(upload.storage_key, len(content) + 1) == content


def test_an_upload_that_cannot_go_on_stops_with_one_line(
    live_server: LiveServer, api_key: str, backup_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a server answering 503 to every PATCH after the first WHEN a backup is restored THEN the command
    tries to go on three times and stops with one line saying how far it got and why; no request starts."""
    sent = failing_patches(monkeypatch, {2, 3, 4, 5}, "503")

    result = veil(live_server, api_key, "restore", str(backup_file))

    assert result.exit_code == 1
    assert result.stderr == (
        f"upload of backup.zip stopped after 3 tries to go on ({CHUNK} of {200 * 1024} bytes sent): "
        "error 503: Service Unavailable\n"
    )
    assert sent == [0, CHUNK, CHUNK, CHUNK, CHUNK]
    assert get(live_server, api_key, "/v1/requests")["count"] == 0
