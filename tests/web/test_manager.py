"""The manager's shell and first screens in a real browser: sign in, upload, the live task list, cancel,
filter, zip download and the admin keys page."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, Route, expect
from skimage import data

from tests.engine.video_factory import make_video
from tests.web.conftest import FLOWER_URL, TABLET, WebServer, sign_in

pytestmark = pytest.mark.browser

CHUNK_BYTES = 5 * 1024 * 1024  # upload.js sends TUS chunks of this size

Shoot = Callable[[Page, str], Path]


def astronaut_jpeg(path: Path) -> Path:
    Image.fromarray(data.astronaut()).save(path, format="JPEG", quality=92)
    return path


def upload_file(client: httpx.Client, name: str, content: bytes) -> str:
    response = client.post("/v1/files", files={"file": (name, content)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def submit(client: httpx.Client, file_id: str, **parameters: Any) -> str:
    body = {"operation": "anonymize", "input": file_id, "parameters": parameters}
    response = client.post("/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def row(page: Page, task_id: str) -> Any:
    return page.locator(f'tr[data-task-id="{task_id}"]')


def test_a_bad_key_is_refused_in_plain_words_and_a_good_one_reaches_the_tasks(
    new_page: Callable[..., Page], api_key: str, screenshot: Shoot
) -> None:
    page = new_page()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("veil_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#signin-error")
    expect(error).to_contain_text("That key was not accepted")
    assert "{" not in error.inner_text()  # words, not JSON
    screenshot(page, "refused")

    sign_in(page, api_key)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_role("link", name="Keys")).to_be_hidden()  # not an admin
    expect(page.locator("#live-state")).to_have_text("Live updates on.")
    screenshot(page, "empty-task-list")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('veil.apiKey')") is None


def test_a_photo_uploads_in_chunks_and_its_task_finishes_live(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path, screenshot: Shoot
) -> None:
    """GIVEN the astronaut photo chosen with the file picker
    WHEN it is uploaded through TUS and submitted with pixelated faces
    THEN the task list, open before the task ends, shows it complete without a reload."""
    photo = astronaut_jpeg(tmp_path / "astronaut.jpg")
    page.get_by_role("link", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", name="Upload photos and videos")).to_be_visible()
    expect(page.get_by_role("checkbox", name="Faces")).to_be_checked()
    page.locator("#file-input").set_input_files(str(photo))
    upload = page.locator("li.upload", has_text="astronaut.jpg")
    expect(upload.locator(".state")).to_have_text("Uploaded")
    page.get_by_role("checkbox", name="Licence plates").uncheck()
    page.get_by_label("Faces: method").select_option("pixelate")
    page.get_by_label("Faces: mask scale").fill("1.5")
    screenshot(page, "upload-form")
    page.get_by_role("button", name="Anonymize").click()
    link = upload.get_by_role("link")
    expect(link).to_have_text(re.compile(r"^task_"))
    task_id = link.inner_text()

    with web_server.api(api_key) as client:
        task = client.get(f"/v1/tasks/{task_id}").json()
    assert task["parameters"]["detectors"] == ["face"]
    assert task["parameters"]["styles"]["face"]["method"] == "pixelate"
    assert task["parameters"]["styles"]["face"]["mask_scale"] == 1.5

    page.get_by_role("link", name="See the task list").click()
    expect(row(page, task_id).locator("td.status")).to_contain_text("completed", timeout=60_000)
    # the list is only redrawn from the event stream, which stayed connected throughout
    expect(page.locator("#live-state")).to_have_text("Live updates on.")
    expect(row(page, task_id).locator("progress")).to_have_attribute("value", "1")
    screenshot(page, "task-completed")


DROP_FILES = """([files]) => {
    const transfer = new DataTransfer();
    for (const [name, base64] of files) {
        const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
    }
    const zone = document.getElementById("dropzone");
    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
    zone.dispatchEvent(new DragEvent("dragover", init));
    zone.dispatchEvent(new DragEvent("drop", init));
}"""


def test_dropped_files_upload_together_each_with_its_own_progress_and_task(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path, screenshot: Shoot
) -> None:
    content = base64.b64encode(astronaut_jpeg(tmp_path / "a.jpg").read_bytes()).decode()
    page.get_by_role("link", name="Upload", exact=True).click()
    page.evaluate(DROP_FILES, [[["left.jpg", content], ["right.jpg", content]]])
    rows = page.locator("li.upload")
    expect(rows).to_have_count(2)
    expect(rows.locator("progress")).to_have_count(2)
    for name in ("left.jpg", "right.jpg"):
        expect(page.locator("li.upload", has_text=name).locator(".state")).to_have_text("Uploaded")
    page.get_by_role("button", name="Anonymize").click()
    expect(page.locator("#submit-status")).to_contain_text("2 tasks submitted")
    screenshot(page, "dropped")
    with web_server.api(api_key) as client:
        tasks = client.get("/v1/tasks").json()["results"]
    assert len(tasks) == 2
    assert all(task["operation"] == "anonymize" for task in tasks)


def test_an_upload_resumes_from_head_after_a_dropped_connection(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path
) -> None:
    """GIVEN a 3-chunk photo whose second PATCH reaches the server but loses its answer
    WHEN the upload goes on
    THEN the page asks HEAD for the offset, sends only what is missing, and the file is whole."""
    noise = np.random.default_rng(0).integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
    photo = tmp_path / "noise.jpg"
    Image.fromarray(noise).save(photo, format="JPEG", quality=100)
    size = photo.stat().st_size
    assert size > 2 * CHUNK_BYTES, size
    seen: list[tuple[str, str | None]] = []
    dropped: list[int] = []

    def drop_second_answer(route: Route) -> None:
        request = route.request
        seen.append((request.method, request.headers.get("upload-offset")))
        if request.method == "PATCH" and not dropped and request.headers["upload-offset"] != "0":
            dropped.append(route.fetch().status)  # the server takes the chunk; the browser never hears
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/v1/uploads/*", drop_second_answer)
    page.goto(page.url.split("#")[0] + "#/upload")
    page.locator("#file-input").set_input_files(str(photo))
    upload = page.locator("li.upload", has_text="noise.jpg")
    expect(upload.locator(".state")).to_have_text("Uploaded", timeout=30_000)

    assert dropped == [204]
    assert seen == [
        ("PATCH", "0"),
        ("PATCH", str(CHUNK_BYTES)),
        ("HEAD", None),
        ("PATCH", str(2 * CHUNK_BYTES)),
    ], seen
    with web_server.api(api_key) as client:
        files = client.get("/v1/files", params={"name": "noise.jpg"}).json()["results"]
    assert [file["properties"]["size"] for file in files] == [size]


def test_a_text_file_named_jpg_shows_its_error_in_plain_words(
    page: Page, tmp_path: Path, screenshot: Shoot
) -> None:
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is not a photo\n" * 10)
    page.goto(page.url.split("#")[0] + "#/upload")
    page.locator("#file-input").set_input_files(str(fake))
    state = page.locator("li.upload", has_text="holiday.jpg").locator(".state")
    expect(state).to_contain_text("Upload failed:")
    text = state.inner_text()
    assert "{" not in text, text
    assert "photo" in text.lower() or "video" in text.lower(), text
    expect(page.get_by_role("button", name="Anonymize")).to_be_disabled()
    screenshot(page, "bad-file")


def test_tasks_are_cancelled_filtered_and_searched(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path, screenshot: Shoot
) -> None:
    """GIVEN two long video tasks (one worker: the second waits) and a finished photo task
    WHEN both video tasks are cancelled from the list
    THEN they show as cancelled, and the status filter and search narrow the list."""
    clip = make_video(tmp_path / "walk.mp4", frames=400)
    with web_server.api(api_key) as client:
        video = upload_file(client, "walk.mp4", clip.path.read_bytes())
        photo = upload_file(client, "astronaut.jpg", astronaut_jpeg(tmp_path / "a.jpg").read_bytes())
        done = submit(client, photo, detectors=["face"])
        web_server.wait_for_task(api_key, done)
        first = submit(client, video, detectors=["face"], detect_every=1)
        second = submit(client, video, detectors=["face"], detect_every=1)

    page.reload()
    for task_id in (second, first):
        expect(row(page, task_id)).to_be_visible()
        row(page, task_id).get_by_role("button", name="Cancel").click()
        expect(row(page, task_id).locator("td.status")).to_have_text("cancelled")
    screenshot(page, "cancelled")

    page.get_by_label("Status").select_option("completed")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, done)).to_be_visible()
    page.get_by_label("Status").select_option("cancelled")
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Status").select_option("")
    page.get_by_label("Search").fill(first)
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, first)).to_be_visible()
    screenshot(page, "searched")


def test_completed_tasks_download_as_one_zip(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path, screenshot: Shoot
) -> None:
    content = astronaut_jpeg(tmp_path / "a.jpg").read_bytes()
    with web_server.api(api_key) as client:
        files = [upload_file(client, f"p{n}.jpg", content) for n in (1, 2)]
        tasks = [submit(client, file_id, detectors=["face"]) for file_id in files]
    for task_id in tasks:
        assert web_server.wait_for_task(api_key, task_id)["status"] == "completed"

    page.reload()
    expect(row(page, tasks[0]).locator("td.input")).to_have_text("p1.jpg")  # the file's name, not its id
    for task_id in tasks:
        row(page, task_id).get_by_role("checkbox").check()
    button = page.get_by_role("button", name="Download 2 as zip")
    screenshot(page, "selected")
    with page.expect_download() as info:
        button.click()
    archive = zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes()))
    names = set(archive.namelist())
    assert {f"{tasks[0]}/p1.jpg", f"{tasks[1]}/p2.jpg"} <= names, names


def test_an_admin_gives_a_new_key_its_own_file_root(
    new_page: Callable[..., Page], web_server: WebServer, admin_key: str, tmp_path: Path
) -> None:
    """GIVEN an admin on the keys page and a directory on the server
    WHEN a key is created with that directory as its file root, then one with a root that does not exist
    THEN the first is listed with its root (and sees it in /v1/keys/me); the second is refused in words."""
    dashcam = tmp_path / "dashcam"
    dashcam.mkdir()
    page = new_page()
    sign_in(page, admin_key)
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill("dashcam-team")
    page.get_by_label("File root").fill(str(dashcam))
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret-value").inner_text()
    me = httpx.get(f"{web_server.url}/v1/keys/me", headers={"x-api-key": secret}).json()
    assert me["file_root"] == str(dashcam)
    key_row = page.locator("#key-table tbody tr", has_text="dashcam-team")
    expect(key_row.locator(".key-file-root")).to_have_text(str(dashcam))
    expect(page.get_by_label("File root")).to_have_value("")

    page.get_by_label("Name").fill("nowhere-team")
    page.get_by_label("File root").fill(str(tmp_path / "missing"))
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#keys-error")).to_contain_text("is not a directory on the server; create it first")
    expect(page.locator("#key-table tbody tr", has_text="nowhere-team")).to_have_count(0)


def test_an_admin_creates_and_revokes_a_key(
    new_page: Callable[..., Page], web_server: WebServer, admin_key: str, screenshot: Shoot
) -> None:
    page = new_page()
    sign_in(page, admin_key)
    page.get_by_role("link", name="Keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    page.get_by_label("Name").fill("camera-team")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret-value").inner_text()
    assert httpx.get(f"{web_server.url}/v1/keys/me", headers={"x-api-key": secret}).status_code == 200
    key_row = page.locator("#key-table tbody tr", has_text="camera-team")
    expect(key_row.locator(".key-status")).to_have_text("active")
    screenshot(page, "created")

    key_row.get_by_role("button", name="Revoke").click()
    key_row.get_by_role("button", name="Yes, revoke camera-team").click()
    expect(key_row.locator(".key-status")).to_contain_text("revoked")
    assert httpx.get(f"{web_server.url}/v1/keys/me", headers={"x-api-key": secret}).status_code == 401
    screenshot(page, "revoked")


def test_only_admin_keys_see_the_link_to_flower(
    new_page: Callable[..., Page], admin_key: str, api_key: str
) -> None:
    admin_page, user_page = new_page(), new_page()
    sign_in(admin_page, admin_key)
    sign_in(user_page, api_key)

    link = admin_page.get_by_role("link", name="Monitoring")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", FLOWER_URL)
    expect(link).to_have_attribute("target", "_blank")
    expect(user_page.get_by_role("link", name="Tasks")).to_be_visible()
    expect(user_page.get_by_role("link", name="Monitoring")).to_have_count(0)


def test_the_screens_fit_a_tablet(new_page: Callable[..., Page], api_key: str, screenshot: Shoot) -> None:
    page = new_page(TABLET)
    sign_in(page, api_key)
    screenshot(page, "tasks")
    page.get_by_role("link", name="Upload", exact=True).click()
    expect(page.get_by_role("checkbox", name="Faces")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    screenshot(page, "upload")
    reached = set()
    for _ in range(12):  # the keyboard reaches the file picker and the options
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id"))
    assert {"file-input", "detector-face", "method-face", "mask-scale-face"} <= reached, reached


PHONE = {"width": 390, "height": 844}


def test_the_task_list_names_each_input_and_counts_in_words(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path
) -> None:
    """GIVEN one task on astronaut.jpg, then a second
    WHEN the task list shows them
    THEN each row names its input file, the count agrees with its number, and the page says where the
    BlurIt-style API's tasks are."""
    content = astronaut_jpeg(tmp_path / "a.jpg").read_bytes()
    with web_server.api(api_key) as client:
        first = submit(client, upload_file(client, "astronaut.jpg", content))
    page.reload()
    expect(row(page, first).locator("td.input")).to_have_text("astronaut.jpg")
    expect(page.locator("#task-count")).to_have_text("1 task, page 1 of 1")
    with web_server.api(api_key) as client:
        second = submit(client, upload_file(client, "second photo.jpg", content))
    page.reload()
    expect(row(page, second).locator("td.input")).to_have_text("second photo.jpg")
    expect(page.locator("#task-count")).to_have_text("2 tasks, page 1 of 1")
    note = page.locator("#blurit-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("POST /api/task/file")
    expect(note).to_contain_text("GET /api/task/{id}")


def test_a_phone_sees_each_tasks_id_and_status(
    new_page: Callable[..., Page], web_server: WebServer, api_key: str, tmp_path: Path, screenshot: Shoot
) -> None:
    """GIVEN a completed task and one submitted behind it (still running, with its Cancel button)
    WHEN the task list is shown 390 px wide
    THEN each task's id and status lie whole inside the screen, with nothing to scroll sideways."""
    content = astronaut_jpeg(tmp_path / "a.jpg").read_bytes()
    with web_server.api(api_key) as client:
        done = submit(client, upload_file(client, "astronaut.jpg", content))
        web_server.wait_for_task(api_key, done)
        later = submit(client, upload_file(client, "a photo with a rather long name.jpg", content))
    page = new_page(PHONE)
    sign_in(page, api_key)
    expect(row(page, done).locator("td.status")).to_contain_text("completed")
    expect(row(page, later)).to_be_visible()
    screenshot(page, "phone-tasks")
    # One snapshot of every row, so that a live update redrawing a row cannot come between measurements.
    cells = page.evaluate(
        """() => [...document.querySelectorAll("tr[data-task-id]")].flatMap((tr) =>
            ["td.task", "td.status"].map((cell) => {
                const box = tr.querySelector(cell).getBoundingClientRect();
                return [tr.dataset.taskId, cell, box.left, box.right, box.width];
            }))"""
    )
    assert {(task_id, cell) for task_id, cell, *_ in cells} == {
        (task_id, cell) for task_id in (done, later) for cell in ("td.task", "td.status")
    }
    for task_id, cell, left, right, width in cells:
        assert width > 0 and left >= 0 and right <= PHONE["width"], (task_id, cell, left, right)
    assert page.evaluate("document.querySelector('.table-wrap').scrollWidth") <= PHONE["width"]
