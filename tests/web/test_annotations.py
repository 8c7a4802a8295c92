"""A task's annotations in the manager: the Export menu and Import annotations, each following its background
request (GET /v1/requests/{rq_id}) to a download, a new render task, or the library's message."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from tests.web.conftest import TABLET, WebServer, sign_in
from tests.web.test_editor import astronaut_jpeg, finished_task
from veil.core.schemas import RequestOperation
from veil.core.services.keys import find_api_key
from veil.core.services.requests import request_on_task
from veil.core.settings import Settings

pytestmark = pytest.mark.browser

Shoot = Callable[[Page, str], Path]

COCO = "COCO 1.0"
CORRECTED_XYWH = (40.0, 400.0, 80.0, 80.0)  # far from the astronaut's face


@pytest.fixture(scope="module")
def photo(web_server: WebServer) -> tuple[str, dict[str, Any]]:
    """A key and its completed anonymize task on the astronaut photo, shared by this module's tests (an
    import keeps the task as it was, apart from the document it stores and the render task it starts)."""
    key = web_server.new_key("annotations")
    return key, finished_task(web_server, key, "astronaut.jpg", astronaut_jpeg(), detectors=["face"])


def open_task(
    new_page: Callable[..., Page],
    web_server: WebServer,
    key: str,
    task_id: str,
    viewport: dict[str, int] | None = None,
) -> Page:
    page = new_page(viewport)
    sign_in(page, key)
    page.goto(f"{web_server.url}/#/tasks/{task_id}")
    expect(page.locator("#export-menu")).to_be_visible(timeout=30_000)
    return page


def finished_request(web_server: WebServer, key: str, rq_id: str) -> dict[str, Any]:
    with web_server.api(key) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            record: dict[str, Any] = client.get(f"/v1/requests/{rq_id}").json()
            if record["status"] in {"finished", "failed"}:
                return record
            time.sleep(0.2)
    raise AssertionError(f"request {rq_id} did not end: {record}")


def coco_export(web_server: WebServer, key: str, task_id: str) -> bytes:
    """The task's annotations as COCO, through the API."""
    with web_server.api(key) as client:
        response = client.post(f"/v1/tasks/{task_id}/annotations/export", params={"format": COCO})
        assert response.status_code == 202, response.text
        record = finished_request(web_server, key, response.json()["rq_id"])
        assert record["status"] == "finished", record
        return client.get(record["result_url"]).content


def moved_coco(data: bytes, xywh: tuple[float, float, float, float]) -> bytes:
    """The COCO zip with its one box moved to `xywh`, as an editor correcting it in CVAT would."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name.startswith("annotations/instances_"):
                document = json.loads(content)
                (box,) = document["annotations"]
                box["bbox"] = list(xywh)
                box["area"] = xywh[2] * xywh[3]
                content = json.dumps(document).encode()
            target.writestr(name, content)
    return out.getvalue()


def test_a_finished_task_exports_as_coco_with_its_original_image_and_downloads_as_a_zip(
    new_page: Callable[..., Page], web_server: WebServer, photo: tuple[str, dict[str, Any]], screenshot: Shoot
) -> None:
    """GIVEN a completed anonymize task on a photo with one face
    WHEN its Export menu asks for COCO 1.0 with the images, from the original
    THEN the request is followed to a download button, which has the focus, and the zip it saves holds the
    COCO instances with the face's box and the original photo, byte for byte."""
    key, task = photo
    page = open_task(new_page, web_server, key, task["id"])
    polled: list[str] = []
    page.on("request", lambda sent: "/v1/requests/" in sent.url and polled.append(sent.url))
    page.locator("#export-menu summary").click()
    form = page.locator("#export-form")
    expect(form.get_by_label("Format")).to_contain_text("COCO 1.0")
    assert "CVAT for video 1.1" not in form.get_by_label("Format").inner_text()  # a photo's formats only
    form.get_by_label("Format").select_option(COCO)
    expect(form.get_by_label("the original")).to_be_disabled()  # until the images are asked for
    form.get_by_label("Include the images").check()
    form.get_by_label("the original").check()
    form.get_by_role("button", name="Export").click()
    button = page.locator("#export-state").get_by_test_id("request-download")
    expect(button).to_be_focused()
    expect(button).to_contain_text("Download: ")
    screenshot(page, "exported")
    with web_server.api(key) as client:
        (record,) = client.get("/v1/requests", params={"operation": "export:dataset"}).json()["results"]
    assert polled and set(polled) == {f"{web_server.url}/v1/requests/{record['id']}"}
    assert (record["status"], record["operation"]["format"]) == ("finished", COCO)

    with page.expect_download() as info:
        button.click()
    with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as archive:
        names = archive.namelist()
        (instances,) = [name for name in names if name.startswith("annotations/instances_")]
        document = json.loads(archive.read(instances))
        (image,) = [name for name in names if name.endswith("astronaut.jpg")]
        image_bytes = archive.read(image)
    assert [category["name"] for category in document["categories"]][:1] == ["face"]
    assert len(document["annotations"]) == task["result"]["detections"]["face"] == 1
    assert [item["file_name"] for item in document["images"]] == ["astronaut.jpg"]
    assert image_bytes == astronaut_jpeg()


def test_a_corrected_file_is_imported_and_rendered_as_a_new_task(
    new_page: Callable[..., Page],
    web_server: WebServer,
    photo: tuple[str, dict[str, Any]],
    tmp_path: Path,
    screenshot: Shoot,
) -> None:
    """GIVEN the task's COCO export with its box moved, as corrected in another tool
    WHEN it is imported with "Render" from the task's page
    THEN the request is followed to a link to the render task it started, which has the focus and opens
    that task, completed with the corrected box."""
    key, task = photo
    corrected = tmp_path / "corrected.zip"
    corrected.write_bytes(moved_coco(coco_export(web_server, key, task["id"]), CORRECTED_XYWH))
    page = open_task(new_page, web_server, key, task["id"])
    page.locator("#import-menu summary").click()
    form = page.locator("#import-form")
    form.get_by_label("Annotations file").set_input_files(str(corrected))
    form.get_by_label("Format").select_option(COCO)
    form.get_by_label("Render").check()
    form.get_by_role("button", name="Import").click()
    link = page.get_by_test_id("render-task")
    expect(link).to_be_focused()
    expect(page.locator("#import-state")).to_contain_text("Imported")
    screenshot(page, "imported")

    render_id = link.inner_text().removeprefix("task ")
    link.click()
    expect(page.get_by_role("heading", name=f"Task {render_id}")).to_be_visible()
    render = web_server.wait_for_task(key, render_id)
    assert (render["operation"], render["status"]) == ("render", "completed"), render
    expect(page.get_by_test_id("photo-editor")).to_be_visible(timeout=30_000)
    with web_server.api(key) as client:
        document = client.get(f"/v1/tasks/{render_id}/detections").json()
    (box,) = document["frames"][0]["detections"]
    x, y, w, h = CORRECTED_XYWH
    assert box["box"] == pytest.approx([x, y, x + w, y + h], abs=0.5)


def test_a_failed_import_shows_the_librarys_message_and_starts_nothing(
    new_page: Callable[..., Page],
    web_server: WebServer,
    photo: tuple[str, dict[str, Any]],
    tmp_path: Path,
    screenshot: Shoot,
) -> None:
    """GIVEN a COCO file
    WHEN it is imported as CVAT for images 1.1, with "Render"
    THEN the request fails, the page shows its message (the format library's words) with the focus on it,
    and no render task is made."""
    key, task = photo
    coco = tmp_path / "annotations.zip"
    coco.write_bytes(coco_export(web_server, key, task["id"]))
    with web_server.api(key) as client:
        tasks_before = client.get("/v1/tasks").json()["count"]
    page = open_task(new_page, web_server, key, task["id"])
    page.locator("#import-menu summary").click()
    form = page.locator("#import-form")
    form.get_by_label("Annotations file").set_input_files(str(coco))
    form.get_by_label("Format").select_option("CVAT for images 1.1")
    form.get_by_label("Render").check()
    form.get_by_role("button", name="Import").click()
    error = page.locator("#import-state").get_by_test_id("request-error")
    expect(error).to_be_focused()
    screenshot(page, "failed")

    with web_server.api(key) as client:
        failed = client.get("/v1/requests", params={"status": "failed"}).json()["results"]
        assert client.get("/v1/tasks").json()["count"] == tasks_before
    (record,) = [found for found in failed if found["operation"]["format"] == "CVAT for images 1.1"]
    assert "annotations.xml" in record["message"], record
    expect(error).to_have_text(f"The import failed: {record['message']}")


def test_the_annotation_menus_fit_a_tablet_and_answer_the_keyboard(
    new_page: Callable[..., Page], web_server: WebServer, photo: tuple[str, dict[str, Any]], screenshot: Shoot
) -> None:
    key, task = photo
    page = open_task(new_page, web_server, key, task["id"], viewport=TABLET)
    for menu in ("#export-menu", "#import-menu"):  # opened from the keyboard
        page.locator(f"{menu} summary").focus()
        page.keyboard.press("Enter")
        expect(page.locator(menu)).to_have_attribute("open", "")
    page.locator("#export-menu summary").focus()
    reached = set()
    for _ in range(10):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id"))
    assert {
        "export-format",
        "export-images",
        "export-submit",
        "import-file",
        "import-format",
        "import-render",
    } <= reached
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    screenshot(page, "tablet")


def queued_request(web_server: WebServer, key: str, task_id: str, operation: RequestOperation) -> str:
    """The id of a request recorded as its route records it but sent to no worker, so it stays queued (the
    job re-sending lost messages waits minutes before it sends one)."""
    with web_server.sessions() as session:
        owner = find_api_key(session, key)
        assert owner is not None
        settings = Settings(data_dir=web_server.data_dir)
        record = request_on_task(
            session, owner=owner, settings=settings, operation=operation, task_id=task_id, format_name=COCO
        )
        return record.id


@pytest.mark.parametrize(
    ("kind", "operation"), [("export", "export:annotations"), ("import", "import:annotations")]
)
def test_a_queued_request_is_cancelled_from_its_button(
    new_page: Callable[..., Page],
    web_server: WebServer,
    photo: tuple[str, dict[str, Any]],
    tmp_path: Path,
    screenshot: Shoot,
    kind: str,
    operation: RequestOperation,
) -> None:
    """GIVEN a request that stays queued, which the menu's POST answers with
    WHEN the menu starts it and its Cancel button is pressed while the page shows it queued
    THEN the page says it was cancelled, with the focus there, and the server's request ended failed with
    the cancellation message."""
    key, task = photo
    rq_id = queued_request(web_server, key, task["id"], operation)
    page = open_task(new_page, web_server, key, task["id"])

    def answer_with_the_queued_request(route: Route) -> None:
        if route.request.method == "POST":
            route.fulfill(status=202, json={"rq_id": rq_id})
        else:
            route.continue_()

    page.route(re.compile(rf"/v1/tasks/{task['id']}/annotations(/export)?\?"), answer_with_the_queued_request)
    page.locator(f"#{kind}-menu summary").click()
    form = page.locator(f"#{kind}-form")
    if kind == "import":
        (tmp_path / "annotations.json").write_text("{}")
        form.get_by_label("Annotations file").set_input_files(str(tmp_path / "annotations.json"))
    form.get_by_label("Format").select_option(COCO)
    form.get_by_role("button", name=kind.capitalize(), exact=True).click()
    state = page.locator(f"#{kind}-state")
    expect(state).to_contain_text("queued")
    screenshot(page, "queued")
    state.get_by_role("button", name=f"Cancel the {kind}").click()
    note = state.get_by_test_id("request-cancelled")
    expect(note).to_be_focused()
    expect(note).to_have_text(f"The {kind} was cancelled; nothing was kept.")
    screenshot(page, "cancelled")

    with web_server.api(key) as client:
        record = client.get(f"/v1/requests/{rq_id}").json()
    assert (record["status"], record["message"]) == ("failed", "Cancelled at the client's request.")


def test_selected_tasks_export_as_one_dataset(
    new_page: Callable[..., Page], web_server: WebServer, screenshot: Shoot
) -> None:
    """GIVEN two completed tasks on photos of the same name
    WHEN both are selected in the task list and exported as one COCO dataset with their images
    THEN the request is followed to a download button, which has the focus, and the zip holds each task's
    anonymized photo under a folder named by its id."""
    key = web_server.new_key("datasets")
    tasks = [
        finished_task(web_server, key, "astronaut.jpg", astronaut_jpeg(), detectors=["face"]) for _ in "ab"
    ]
    page = new_page()
    sign_in(page, key)
    for task in tasks:
        page.locator(f'tr[data-task-id="{task["id"]}"]').get_by_role("checkbox").check()
    page.locator("#dataset-menu summary").click()
    form = page.locator("#dataset-form")
    expect(form.get_by_label("Format")).to_contain_text("CVAT for video 1.1")
    form.get_by_label("Format").select_option(COCO)
    form.get_by_label("Include the anonymized images").check()
    form.get_by_role("button", name="Export").click()
    button = page.locator("#dataset-state").get_by_test_id("request-download")
    expect(button).to_be_focused(timeout=30_000)
    screenshot(page, "dataset-exported")

    with page.expect_download() as info:
        button.click()
    with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as archive:
        names = archive.namelist()
    with web_server.api(key) as client:
        (record,) = client.get("/v1/requests").json()["results"]
    assert sorted(record["operation"]["task_ids"]) == sorted(task["id"] for task in tasks)
    assert all(any(name.endswith(f"{task['id']}/astronaut.jpg") for name in names) for task in tasks), names
