"""`veil task export|import-annotations|backup|restore` and `veil dataset export` against the real API, with
a worker thread running what the API queued (the scripted face detector)."""

from __future__ import annotations

import json
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.cli.conftest import LiveServer
from tests.engine.video_factory import make_video
from tests.helpers import save_image
from veil.cli.app import app
from veil.cli.client import CommandError
from veil.cli.task_requests import resolve_format
from veil.core.storage import LocalStorage
from veil.engine.annotations import formats
from veil.worker.context import WorkerContext
from veil.worker.requests import run_request
from veil.worker.tasks import run_task

pytestmark = pytest.mark.usefixtures("one_face")

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def worker(live_server: LiveServer) -> Iterator[None]:
    """Runs the tasks and requests the API queues, as a worker would, until the test ends."""
    settings, queue = live_server.settings, live_server.queue
    storage = LocalStorage(settings.storage_dir)
    context = WorkerContext(settings, live_server.sessions, storage, queue, beat_interval_s=0.0)  # type: ignore[arg-type]
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            if queue.task_ids:
                run_task(context, queue.task_ids.pop(0))
            elif queue.requests:
                run_request(context, queue.requests.pop(0)[0])
            else:
                time.sleep(0.01)

    thread = threading.Thread(target=work)
    thread.start()
    yield
    stop.set()
    thread.join()


def veil(server: LiveServer, api_key: str, *args: str) -> Result:
    env = {"VEIL_URL": server.url, "VEIL_API_KEY": api_key}
    return runner.invoke(app, ["task", *args, "--interval", "0.05"], env=env)


def anonymized(server: LiveServer, api_key: str, tmp_path: Path) -> str:
    photo = save_image(tmp_path / "photo.png")
    result = runner.invoke(
        app, ["task", "submit", str(photo), "--wait"], env={"VEIL_URL": server.url, "VEIL_API_KEY": api_key}
    )
    assert result.exit_code == 0, result.output
    return result.stdout.split()[0]


@pytest.mark.usefixtures("worker")
def test_export_backup_restore_and_import_with_render(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    task_id = anonymized(live_server, api_key, tmp_path)

    exported = veil(
        live_server, api_key, "export", task_id, "--format", "coco", "-o", str(tmp_path / "out.zip")
    )
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.strip() == str(tmp_path / "out.zip")
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".json")]
        assert len(json.loads(archive.read(name))["annotations"]) == 1

    cvat = veil(
        live_server, api_key, "export", task_id, "-f", "cvat", "--images", "-o", str(tmp_path / "c.zip")
    )
    assert cvat.exit_code == 0, cvat.output
    with zipfile.ZipFile(tmp_path / "c.zip") as archive:
        assert b"<image " in archive.read("annotations.xml")  # CVAT for images: the task is a photo
        assert any(n.endswith(".png") for n in archive.namelist())

    imported = veil(
        live_server,
        api_key,
        "import-annotations",
        task_id,
        str(tmp_path / "out.zip"),
        "-f",
        "coco",
        "--render",
    )
    assert imported.exit_code == 0, imported.output
    document_id, render_id = imported.stdout.split()
    assert (document_id[:5], render_id[:5]) == ("file_", "task_")

    backed_up = veil(live_server, api_key, "backup", task_id, "-o", str(tmp_path / "b.zip"))
    assert backed_up.exit_code == 0, backed_up.output
    restored = veil(live_server, api_key, "restore", str(tmp_path / "b.zip"))
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.strip().startswith("task_") and restored.stdout.strip() != task_id


@pytest.mark.usefixtures("worker")
def test_a_failed_request_is_one_line_and_exit_status_1(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    task_id = anonymized(live_server, api_key, tmp_path)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"no annotations here")

    result = veil(live_server, api_key, "import-annotations", task_id, str(bad), "-f", "coco")

    assert result.exit_code == 1
    assert "request rq_" in result.output and "failed: bad.zip: no COCO annotations" in result.output
    unknown = veil(live_server, api_key, "export", task_id, "-f", "csv", "-o", str(tmp_path / "x.zip"))
    assert unknown.exit_code == 1
    assert "format 'csv' names 0 formats; give one of: COCO 1.0" in unknown.output


@pytest.mark.usefixtures("worker")
def test_dataset_export_writes_each_task_under_its_id(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    """GIVEN two anonymized photos of the same name, in two tasks
    WHEN `veil dataset export` asks for both as "cvat" with their images
    THEN it follows the request and writes the zip: CVAT for images (the tasks are photos), each task's
    photo and box named under a folder named by its id. A task that is not found fails in one line."""
    task_ids = [anonymized(live_server, api_key, tmp_path / folder) for folder in ("a", "b")]
    env = {"VEIL_URL": live_server.url, "VEIL_API_KEY": api_key}
    out = tmp_path / "dataset.zip"

    result = runner.invoke(
        app,
        ["dataset", "export", *task_ids, "-f", "cvat", "--images", "-o", str(out), "--interval", "0.05"],
        env=env,
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        xml = archive.read("annotations.xml").decode()
    assert xml.count("<image ") == xml.count("<box ") == 2
    for task_id in task_ids:
        assert f'name="{task_id}/photo.png"' in xml
        assert any(name.endswith(f"{task_id}/photo.png") for name in names)
    with httpx.Client(base_url=live_server.url, headers={"x-api-key": api_key}) as client:
        (request,) = client.get("/v1/requests").json()["results"]
    assert request["operation"]["task_ids"] == task_ids
    assert request["operation"]["format"] == "CVAT for images 1.1"

    missing = runner.invoke(
        app,
        ["dataset", "export", task_ids[0], "task_missing", "-f", "coco", "-o", str(tmp_path / "x.zip")],
        env=env,
    )
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error 404: ") and "task_missing" in missing.stderr
    assert missing.stderr.count("\n") == 1
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.usefixtures("worker")
def test_an_ambiguous_format_name_is_read_by_the_tasks_media_kinds(
    live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    """GIVEN an anonymized photo and an anonymized video
    WHEN `veil dataset export` is asked for "cvat" (CVAT for images or CVAT for video)
    THEN the video alone gets CVAT for video, the photo alone or both together CVAT for images (which
    holds both), as the requests the server received name them."""
    env = {"VEIL_URL": live_server.url, "VEIL_API_KEY": api_key}
    photo = anonymized(live_server, api_key, tmp_path)
    clip = make_video(tmp_path / "clip.mp4", frames=5, audio=None).path
    submitted = runner.invoke(app, ["task", "submit", str(clip), "--wait", "--interval", "0.05"], env=env)
    assert submitted.exit_code == 0, submitted.output
    video = submitted.stdout.split()[0]
    cases = {
        (video,): "CVAT for video 1.1",
        (photo,): "CVAT for images 1.1",
        (video, photo): "CVAT for images 1.1",
    }

    for task_ids in cases:
        args = [
            "dataset",
            "export",
            *task_ids,
            "-f",
            "cvat",
            "-o",
            str(tmp_path / "out.zip"),
            "--interval",
            "0.05",
        ]
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output

    with httpx.Client(base_url=live_server.url, headers={"x-api-key": api_key}) as client:
        requests = client.get("/v1/requests").json()["results"]
    asked = {tuple(r["operation"]["task_ids"]): r["operation"]["format"] for r in requests}
    assert asked == cases


class _Formats:
    """The one call `resolve_format` makes when a name picks a single format: the server's format list."""

    def formats(self) -> list[dict[str, Any]]:
        return [
            {"name": f.name, "can_export": f.can_export, "can_import": f.can_import, "media": list(f.media)}
            for f in formats()
        ]


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("coco", "COCO 1.0"),
        ("yolo", "Ultralytics YOLO Detection 1.0"),
        ("YOLO", "Ultralytics YOLO Detection 1.0"),
        ("voc", "PASCAL VOC 1.1"),
        ("mot", "MOT 1.1"),
        ("datumaro", "Datumaro 1.0"),
        ("cvat for video", "CVAT for video 1.1"),
    ],
)
def test_a_short_format_name_starts_a_word_of_the_servers_name(given: str, named: str) -> None:
    assert resolve_format(_Formats(), given, ["task_x"], exporting=True) == named  # type: ignore[arg-type]


def test_a_name_inside_a_word_names_no_format() -> None:
    with pytest.raises(CommandError, match=re.escape("format 'olo' names 0 formats; give one of: COCO 1.0")):
        resolve_format(_Formats(), "olo", ["task_x"], exporting=True)  # type: ignore[arg-type]
