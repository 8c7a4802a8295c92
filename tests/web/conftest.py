"""Browser tests of the manager web app: a real `veil serve`, keys made in its database, and Playwright
driving Debian's Chromium. Screenshots go to tests/web/artifacts/ (git-ignored), kept after the run."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from tests.live_server import veil_serve
from veil.core.database.connection import session_scope
from veil.core.services.keys import create_api_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).parent / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}
FLOWER_URL = "https://flower.example.com/"


@dataclass
class WebServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    sessions: sessionmaker[Session]
    names: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def new_key(self, name: str = "web", *, admin: bool = False) -> str:
        """The secret of a new key (names get a counter so every test has its own)."""
        with session_scope(self.sessions) as session:
            return create_api_key(session, name=f"{name}-{next(self.names)}", admin=admin).secret

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": key}, timeout=30)

    def wait_for_task(self, key: str, task_id: str, timeout_s: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        with self.api(key) as client:
            while time.monotonic() < deadline:
                task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
                if task["status"] in {"completed", "failed", "cancelled"}:
                    return task
                time.sleep(0.2)
        raise AssertionError(f"task {task_id} did not finish in {timeout_s} s: {task}")


@pytest.fixture(scope="package")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """`veil serve --workers 1` on a free port, its data in a temporary directory."""
    data_dir = tmp_path_factory.mktemp("veil-web")
    env = {
        "VEIL_CLEANUP_INTERVAL_S": "0.5",
        "VEIL_RATE_LIMIT": "100000/minute",
        "VEIL_FLOWER_URL": FLOWER_URL,
    }
    with veil_serve(data_dir, env) as running:
        yield WebServer(running.url, running.data_dir, running.process, running.sessions)


@pytest.fixture
def api_key(web_server: WebServer) -> str:
    """A fresh user key per test, so each test sees only its own tasks."""
    return web_server.new_key("user")


@pytest.fixture
def admin_key(web_server: WebServer) -> str:
    return web_server.new_key("admin", admin=True)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Chromium from Debian, headless. Missing Chromium is a failure with the fix, never a skip.
    Package-scoped: Playwright's sync API holds an event loop open in this thread, which would break
    `asyncio.run` in the tests collected after tests/web."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"The browser tests need Chromium at {CHROMIUM}: run `apt-get install -y chromium` "
            "as root (`make test` does so when run as root).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the test item, so fixtures can tell a failed test at teardown."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def new_page(
    browser: Browser, web_server: WebServer, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Opens pages on the manager (1280x800 unless given a viewport); fails the test on any uncaught
    JavaScript error, and saves a screenshot of every page of a failed test under artifacts/."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_page(viewport: dict[str, int] | None = None) -> Page:
        size = viewport or DESKTOP
        context = browser.new_context(
            viewport={"width": size["width"], "height": size["height"]}, accept_downloads=True
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(web_server.url + "/")
        return page

    yield open_page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")
        for number, opened in enumerate(page for context in contexts for page in context.pages):
            opened.screenshot(path=str(ARTIFACTS / f"{test}-FAILED-{number}.png"), full_page=True)
    for context in contexts:
        context.close()
    assert not errors, f"uncaught JavaScript errors: {errors}"


def sign_in(page: Page, key: str) -> None:
    """Signs in through the form and waits for the task list."""
    page.goto(page.url.split("#")[0] + "#/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Tasks").wait_for()


@pytest.fixture
def page(new_page: Callable[..., Page], api_key: str) -> Page:
    """A desktop page signed in with `api_key`."""
    opened = new_page()
    sign_in(opened, api_key)
    return opened


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """screenshot(page, "name") saves tests/web/artifacts/<test>-<name>.png (full page)."""
    ARTIFACTS.mkdir(exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")

    def take(page: Page, name: str) -> Path:
        path = ARTIFACTS / f"{test}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
