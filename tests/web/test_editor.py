"""The result view and correction editor in a real browser: a photo's before/after and box editor, a video's
track editor, re-rendering from corrected detections, downloads, and API errors shown in plain words."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, Route, expect
from skimage import data

from tests.engine.video_factory import make_video
from tests.web.conftest import TABLET, WebServer, sign_in

pytestmark = pytest.mark.browser

Shoot = Callable[[Page, str], Path]

ADDED_XYXY = (40, 400, 120, 480)  # a region of the astronaut photo far from her face
FAR_XYXY = (400, 40, 500, 120)  # neither the face nor the added box


def astronaut_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def finished_task(
    web_server: WebServer,
    key: str,
    name: str,
    content: bytes,
    operation: str = "anonymize",
    **parameters: Any,
) -> dict[str, Any]:
    """Uploads `content` and runs `operation` on it through the API; returns the completed task."""
    with web_server.api(key) as client:
        response = client.post("/v1/files", files={"file": (name, content)})
        assert response.status_code == 201, response.text
        body = {"operation": operation, "input": response.json()["id"], "parameters": parameters}
        response = client.post("/v1/tasks", json=body)
        assert response.status_code == 202, response.text
    task = web_server.wait_for_task(key, response.json()["id"])
    assert task["status"] == "completed", task
    return task


def open_result(page: Page, web_server: WebServer, task_id: str, editor: str) -> None:
    page.goto(f"{web_server.url}/#/tasks/{task_id}")
    expect(page.get_by_test_id(editor)).to_be_visible(timeout=30_000)


def outputs(web_server: WebServer, key: str, task: dict[str, Any]) -> dict[str, bytes]:
    with web_server.api(key) as client:
        return {
            file["name"]: client.get(f"/v1/files/{file['id']}/content").content
            for file in task["result"]["generated_files"]
        }


def drag(
    page: Page, stage: str, media_width: int, start: tuple[float, float], end: tuple[float, float]
) -> None:
    """A mouse drag on `stage` between two points given in media pixels, scrolled into sight first (the
    stage is as tall as the window allows, below the before/after view)."""
    page.get_by_test_id(stage).scroll_into_view_if_needed()
    box = page.get_by_test_id(stage).bounding_box()
    assert box is not None
    scale = box["width"] / media_width
    page.mouse.move(box["x"] + start[0] * scale, box["y"] + start[1] * scale)
    page.mouse.down()
    middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    page.mouse.move(box["x"] + middle[0] * scale, box["y"] + middle[1] * scale, steps=4)
    page.mouse.move(box["x"] + end[0] * scale, box["y"] + end[1] * scale, steps=4)
    page.mouse.up()


def region_diff(a: np.ndarray, b: np.ndarray, xyxy: tuple[int, int, int, int], margin: int = 4) -> float:
    x1, y1, x2, y2 = xyxy
    crop = (slice(y1 + margin, y2 - margin), slice(x1 + margin, x2 - margin))
    return float(np.abs(a[crop].astype(np.int16) - b[crop].astype(np.int16)).mean())


def render_document(web_server: WebServer, key: str, task: dict[str, Any]) -> dict[str, Any]:
    """The whole document a render task obscured: the page uploaded it as a file, which the task names."""
    assert task["parameters"]["detections_file"].startswith("file_")
    assert "detections" not in task["parameters"]
    with web_server.api(key) as client:
        document: dict[str, Any] = client.get(f"/v1/tasks/{task['id']}/detections").json()
    return document


def save_and_follow(page: Page, web_server: WebServer, key: str, old_id: str, editor: str) -> dict[str, Any]:
    """Clicks "Save and re-render", waits for the page to follow the new task, returns it finished."""
    page.get_by_role("button", name="Save and re-render").click()
    page.wait_for_function(f"location.hash.startsWith('#/tasks/') && !location.hash.includes('{old_id}')")
    new_id = page.evaluate("location.hash").rsplit("/", 1)[-1]
    task = web_server.wait_for_task(key, new_id)
    assert task["status"] == "completed", task
    assert task["operation"] == "render"
    expect(page.get_by_test_id(editor)).to_be_visible(timeout=30_000)
    return task


def test_a_photo_is_compared_corrected_and_rerendered(
    page: Page, web_server: WebServer, api_key: str, screenshot: Shoot
) -> None:
    """GIVEN the astronaut photo anonymized through the API
    WHEN its result is opened, a plate box is dragged far from the face and a stray box added and deleted
    THEN "Save and re-render" makes a render task whose output is obscured under the new box only, and
    the page shows that task, whose outputs download from the page."""
    original = astronaut_jpeg()
    task = finished_task(web_server, api_key, "astronaut.jpg", original)
    open_result(page, web_server, task["id"], "photo-editor")
    expect(page.get_by_test_id("box")).to_have_count(1)  # the face
    screenshot(page, "before-after")

    divider = page.get_by_test_id("compare-divider")
    divider.focus()
    page.keyboard.press("ArrowLeft")
    expect(divider).to_have_attribute("aria-valuenow", "48")
    page.keyboard.press("End")
    expect(divider).to_have_attribute("aria-valuenow", "100")

    drag(page, "edit-stage", 512, ADDED_XYXY[:2], ADDED_XYXY[2:])
    expect(page.get_by_test_id("box")).to_have_count(2)
    page.get_by_test_id("box-label").select_option("plate")
    page.get_by_role("button", name="Add a box").click()  # a stray box, removed with the Delete key
    expect(page.get_by_test_id("box")).to_have_count(3)
    expect(page.get_by_test_id("box-x2")).to_have_value("307")  # 40% to 60% of 512
    handle = page.locator("[data-testid=box].selected .handle-se").bounding_box()
    assert handle is not None
    page.mouse.move(handle["x"] + 6, handle["y"] + 6)
    page.mouse.down()
    stage = page.get_by_test_id("edit-stage").bounding_box()
    assert stage is not None
    stage_width = stage["width"]
    page.mouse.move(handle["x"] + 6 + 20 * stage_width / 512, handle["y"] + 6, steps=4)
    page.mouse.up()
    expect(page.get_by_test_id("box-x2")).to_have_value("327")
    page.locator("[data-testid=box].selected").focus()
    page.keyboard.press("Shift+ArrowRight")
    expect(page.get_by_test_id("box-x1")).to_have_value("215")
    page.keyboard.press("Delete")
    expect(page.get_by_test_id("box")).to_have_count(2)
    screenshot(page, "box-added")

    rendered = save_and_follow(page, web_server, api_key, task["id"], "photo-editor")
    assert rendered["parameters"]["input"] == task["parameters"]["input"]
    sent = render_document(web_server, api_key, rendered)["frames"][0]["detections"]
    assert sorted(box["label"] for box in sent) == ["face", "plate"]
    plate = next(box for box in sent if box["label"] == "plate")
    assert plate["box"] == pytest.approx(list(ADDED_XYXY), abs=2)
    expect(page.get_by_test_id("box")).to_have_count(2)
    screenshot(page, "rerendered")

    files = outputs(web_server, api_key, rendered)
    before = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"))
    after = np.asarray(Image.open(io.BytesIO(files["astronaut.jpg"])).convert("RGB"))
    assert region_diff(before, after, ADDED_XYXY) > 3 * region_diff(before, after, FAR_XYXY) + 4
    assert region_diff(before, after, FAR_XYXY) < 3
    report = json.loads(files["astronaut.jpg.json"])
    assert len(report["frames"][0]["detections"]) == 2

    with page.expect_download() as download:
        page.get_by_test_id("download-media").click()
    assert Path(download.value.path()).read_bytes() == files["astronaut.jpg"]
    with page.expect_download() as download:
        page.get_by_test_id("download-json").click()
    assert json.loads(Path(download.value.path()).read_text()) == report


def decode(content: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(content), "r") as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_video_track_is_added_interpolated_and_rerendered(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path, screenshot: Shoot
) -> None:
    """GIVEN a 30-frame clip anonymized with faces filled in magenta
    WHEN a track is drawn at frame 0, extended to frame 20 and moved there (a second key frame)
    THEN the re-rendered video has 30 frames and frame 10 is filled at the interpolated box only."""
    clip = make_video(tmp_path / "clip.mp4", frames=30, audio=None)
    content = clip.path.read_bytes()
    styles = {"face": {"method": "fill", "color": "#ff00ff", "shape": "rectangle"}}
    task = finished_task(web_server, api_key, "clip.mp4", content, styles=styles)
    open_result(page, web_server, task["id"], "video-editor")
    expect(page.get_by_test_id("frame-label")).to_contain_text("Frame 0 / 29")
    screenshot(page, "player")

    page.get_by_role("button", name="New track at this frame").click()  # a stray track, deleted
    expect(page.get_by_test_id("box")).to_have_count(1)
    page.get_by_role("button", name="Delete track").click()
    expect(page.get_by_test_id("box")).to_have_count(0)
    drag(page, "video-stage", 320, (20, 20), (60, 60))  # a new track, key frame 0
    expect(page.get_by_test_id("track-state")).to_have_text("At frame 0: key frame.")
    timeline = page.get_by_test_id("timeline")
    timeline.focus()
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.get_by_test_id("frame-label")).to_contain_text("Frame 20 / 29")
    expect(page.get_by_test_id("track-state")).to_have_text("At frame 20: not in this frame.")
    page.get_by_role("button", name="Extend to this frame").click()
    expect(page.get_by_test_id("track-state")).to_have_text("At frame 20: interpolated.")
    drag(page, "video-stage", 320, (40, 40), (240, 140))  # grab the box's middle, move it by (200, 100)
    expect(page.get_by_test_id("track-state")).to_have_text("At frame 20: key frame.")
    timeline.focus()
    page.keyboard.press("Home")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.get_by_test_id("track-state")).to_have_text("At frame 10: interpolated.")
    assert page.get_by_test_id("box-x1").input_value() == "120"
    screenshot(page, "track-edited")

    rendered = save_and_follow(page, web_server, api_key, task["id"], "video-editor")
    frames = render_document(web_server, api_key, rendered)["frames"]
    assert [frame["index"] for frame in frames] == list(range(21))
    assert frames[10]["detections"][0]["box"] == pytest.approx([120, 70, 160, 110], abs=2)
    screenshot(page, "rerendered")

    output = decode(outputs(web_server, api_key, rendered)["clip.mp4"])
    source = decode(content)
    assert len(output) == len(source) == 30
    inside = (120, 70, 160, 110)  # frame 10's box, halfway between (20, 20, 60, 60) and (220, 120, 260, 160)
    assert region_diff(source[10], output[10], inside) > 60
    assert np.abs(output[10][80:100, 130:150].astype(int) - [255, 0, 255]).mean() < 40  # magenta
    assert region_diff(source[10], output[10], (250, 180, 310, 230)) < 8  # far from the box


def test_a_failed_rerender_is_explained_in_plain_words(
    page: Page, web_server: WebServer, api_key: str, screenshot: Shoot
) -> None:
    """GIVEN a finished photo task open in the editor
    WHEN its original file is deleted behind the page's back and the person adds a box and saves
    THEN the page says why the re-render could not start, in words, and stays on the task."""
    task = finished_task(web_server, api_key, "astronaut.jpg", astronaut_jpeg())
    open_result(page, web_server, task["id"], "photo-editor")
    with web_server.api(api_key) as client:
        assert client.delete(f"/v1/files/{task['parameters']['input']}").status_code in {200, 204}
    page.get_by_role("button", name="Add a box").click()
    page.get_by_role("button", name="Save and re-render").click()
    error = page.get_by_test_id("result-error")
    expect(error).to_contain_text("The re-render could not be submitted.")
    assert "{" not in error.inner_text()
    assert task["id"] in page.evaluate("location.hash")
    screenshot(page, "render-refused")


def test_saving_unchanged_boxes_makes_no_task(page: Page, web_server: WebServer, api_key: str) -> None:
    """GIVEN a finished photo task open in the editor
    WHEN the person saves without changing a box, then after adding a box and deleting it again
    THEN the page says nothing changed, both times, and no task is made."""
    task = finished_task(web_server, api_key, "astronaut.jpg", astronaut_jpeg())
    open_result(page, web_server, task["id"], "photo-editor")
    save, state = page.get_by_role("button", name="Save and re-render"), page.get_by_test_id("save-state")

    save.click()
    expect(state).to_have_text(
        "Nothing changed: the boxes are as this task left them, so no new task was made."
    )
    page.get_by_role("button", name="Add a box").click()
    expect(page.get_by_test_id("box")).to_have_count(2)
    page.get_by_test_id("delete-box").click()
    expect(page.get_by_test_id("box")).to_have_count(1)
    state.evaluate("node => { node.textContent = ''; }")
    save.click()

    expect(state).to_contain_text("Nothing changed")
    assert task["id"] in page.evaluate("location.hash")
    with web_server.api(api_key) as client:
        assert client.get("/v1/tasks", params={"operation": "render"}).json()["count"] == 0
        assert client.get("/v1/files", params={"name": f"{task['id']}-corrected.json"}).json()["count"] == 0


def test_a_detect_task_is_corrected_into_its_first_output(
    page: Page, web_server: WebServer, api_key: str, screenshot: Shoot
) -> None:
    """GIVEN a `detect` task (boxes, no output media)
    WHEN its result is opened and saved
    THEN the editor shows the boxes over the original with nothing to compare, and the render makes
    the output."""
    task = finished_task(web_server, api_key, "astronaut.jpg", astronaut_jpeg(), "detect")
    open_result(page, web_server, task["id"], "photo-editor")
    expect(page.get_by_test_id("compare")).to_have_count(0)
    expect(page.get_by_test_id("box")).to_have_count(1)
    screenshot(page, "detected")
    rendered = save_and_follow(page, web_server, api_key, task["id"], "photo-editor")
    names = sorted(file["name"] for file in rendered["result"]["generated_files"])
    assert names == ["astronaut.jpg", "astronaut.jpg.json"]
    expect(page.get_by_test_id("compare")).to_be_visible()


def test_the_editors_fit_a_tablet(
    new_page: Callable[..., Page], web_server: WebServer, api_key: str, tmp_path: Path, screenshot: Shoot
) -> None:
    page = new_page(TABLET)
    sign_in(page, api_key)
    photo = finished_task(web_server, api_key, "astronaut.jpg", astronaut_jpeg())
    open_result(page, web_server, photo["id"], "photo-editor")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= TABLET["width"], width
    screenshot(page, "photo")
    clip = make_video(tmp_path / "clip.mp4", frames=10, audio=None)
    video = finished_task(web_server, api_key, "clip.mp4", clip.path.read_bytes())
    open_result(page, web_server, video["id"], "video-editor")
    page.get_by_label("Video shown").select_option("output")
    page.get_by_test_id("play").click()
    expect(page.get_by_test_id("frame-label")).not_to_contain_text("Frame 0 /")
    expect(page.get_by_test_id("play")).to_have_text("Play")  # ended, so paused again
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= TABLET["width"], width
    screenshot(page, "video")


def test_an_unknown_task_is_reported_not_blank(page: Page, web_server: WebServer) -> None:
    page.goto(f"{web_server.url}/#/tasks/task_doesnotexist0000")
    error = page.get_by_test_id("result-error")
    expect(error).to_contain_text("Could not load task task_doesnotexist0000")
    assert "{" not in error.inner_text()


def with_detections(page: Page, task_id: str, detections: dict[str, int]) -> None:
    """Answers the page's requests for the task with these detection counts."""

    def answer(route: Route) -> None:
        response = route.fetch()
        task = response.json()
        task["result"]["detections"] = detections
        route.fulfill(response=response, json=task)

    page.route(f"**/v1/tasks/{task_id}", answer)


def test_the_result_names_its_input_and_counts_in_words(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path
) -> None:
    """GIVEN a photo task and a video task
    WHEN their results are shown
    THEN each names its input file, and counts agree with their numbers; on video they count tracks."""
    photo = finished_task(web_server, api_key, "astronaut.jpg", astronaut_jpeg())
    with_detections(page, photo["id"], {"face": 1, "plate": 3})
    open_result(page, web_server, photo["id"], "photo-editor")
    expect(page.get_by_test_id("input-name")).to_have_text("astronaut.jpg")
    expect(page.get_by_test_id("found")).to_have_text("1 face, 3 plates")
    expect(page.locator(".box-sidebar .count")).to_have_text("1 box")

    clip = make_video(tmp_path / "door camera.mp4", frames=10, audio=None)
    video = finished_task(web_server, api_key, "door camera.mp4", clip.path.read_bytes())
    with_detections(page, video["id"], {"face": 2, "plate": 1})
    open_result(page, web_server, video["id"], "video-editor")
    expect(page.get_by_test_id("input-name")).to_have_text("door camera.mp4")
    expect(page.get_by_test_id("found")).to_have_text("2 face tracks, 1 plate track")


def test_delete_removes_the_box_or_track_chosen_in_the_list(
    page: Page, web_server: WebServer, api_key: str, tmp_path: Path
) -> None:
    """GIVEN a photo with its detected face and an added box, then a video with a new track
    WHEN a box is chosen in the side list (a track in the track list, or on the timeline) and Delete pressed
    THEN exactly that box or track is gone."""
    photo = finished_task(web_server, api_key, "astronaut.jpg", astronaut_jpeg())
    open_result(page, web_server, photo["id"], "photo-editor")
    page.get_by_role("button", name="Add a box").click()
    expect(page.get_by_test_id("box")).to_have_count(2)
    listed = page.get_by_test_id("box-list").get_by_role("button")
    kept = listed.nth(0).inner_text()
    listed.nth(1).click()
    page.keyboard.press("Delete")
    expect(page.get_by_test_id("box")).to_have_count(1)
    expect(listed).to_have_text([kept])

    clip = make_video(tmp_path / "clip.mp4", frames=10, audio=None)
    video = finished_task(web_server, api_key, "clip.mp4", clip.path.read_bytes())
    open_result(page, web_server, video["id"], "video-editor")
    for chooser in ("track-select", "timeline"):
        page.get_by_role("button", name="New track at this frame").click()
        expect(page.get_by_test_id("box")).to_have_count(1)
        page.get_by_test_id(chooser).focus()
        page.keyboard.press("Delete")
        expect(page.get_by_test_id("box")).to_have_count(0)
        expect(page.get_by_role("heading", name="Tracks (0)")).to_be_visible()


@pytest.mark.parametrize(
    ("viewport", "editor", "stage", "share"),
    [
        ({"width": 1280, "height": 800}, "photo-editor", "edit-stage", 0.75),
        ({"width": 1920, "height": 1080}, "photo-editor", "edit-stage", 0.75),
        ({"width": 1920, "height": 1080}, "video-editor", "video-stage", 0.72),
    ],
)
def test_the_editor_uses_the_space_of_the_window(
    new_page: Callable[..., Page],
    web_server: WebServer,
    api_key: str,
    tmp_path: Path,
    viewport: dict[str, int],
    editor: str,
    stage: str,
    share: float,
) -> None:
    """The photo or video being corrected is as tall as the window allows, leaving room for its toolbar,
    and never wider than the window."""
    page = new_page(viewport)
    sign_in(page, api_key)
    if editor == "photo-editor":
        task = finished_task(web_server, api_key, "astronaut.jpg", astronaut_jpeg())
    else:
        clip = make_video(tmp_path / "clip.mp4", frames=10, audio=None)
        task = finished_task(web_server, api_key, "clip.mp4", clip.path.read_bytes())
    open_result(page, web_server, task["id"], editor)

    box = page.get_by_test_id(stage).bounding_box()
    assert box is not None
    assert box["height"] >= share * viewport["height"], box
    assert box["height"] <= viewport["height"] and box["x"] + box["width"] <= viewport["width"], box
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
