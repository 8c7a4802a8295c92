"""With no network beyond the Veil server, /docs (Swagger UI) and /redoc list every operation, and neither
they nor the manager ask another host for anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from tests.web.conftest import DESKTOP, WebServer

pytestmark = pytest.mark.browser

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture
def offline_page(browser: Browser, web_server: WebServer) -> Iterator[tuple[Page, list[str]]]:
    """A page whose every request to a host other than the server's is refused, as on a machine without
    internet; the list collects the refused URLs."""
    server_host = urlsplit(web_server.url).netloc
    refused: list[str] = []

    def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc in ("", server_host):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    context = browser.new_context(viewport=DESKTOP)
    context.route("**/*", only_the_server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page, refused
    context.close()


def operation_count(web_server: WebServer) -> int:
    document = httpx.get(f"{web_server.url}/openapi.json").json()
    return sum(1 for item in document["paths"].values() for method in item if method in METHODS)


@pytest.mark.parametrize(
    ("path", "operation_selector"),
    [
        ("/docs", ".opblock"),  # Swagger UI: one block per operation, all tags open
        ("/redoc", '[data-section-id*="/operation/"]'),  # ReDoc: one section per operation
    ],
)
def test_docs_list_every_operation_without_internet(
    offline_page: tuple[Page, list[str]],
    web_server: WebServer,
    screenshot: Callable[[Page, str], object],
    path: str,
    operation_selector: str,
) -> None:
    page, refused = offline_page
    expected = operation_count(web_server)

    page.goto(web_server.url + path)
    page.locator(operation_selector).nth(expected - 1).wait_for()
    screenshot(page, path.strip("/"))

    assert page.locator(operation_selector).count() == expected
    assert page.get_by_text("/v1/tasks/{task_id}").first.is_visible()
    assert refused == []
    assert visible_links_elsewhere(page) == []


def visible_links_elsewhere(page: Page) -> list[str]:
    """The links shown on the page that lead to another host (ReDoc adds one to Redocly)."""
    links: list[str] = page.eval_on_selector_all(
        "a[href]",
        """links => links
            .filter(link => link.offsetParent !== null && new URL(link.href).origin !== location.origin)
            .map(link => link.href)""",
    )
    return links


def test_the_manager_asks_no_other_host(offline_page: tuple[Page, list[str]], web_server: WebServer) -> None:
    page, refused = offline_page

    page.goto(web_server.url + "/")
    page.get_by_label("API key").wait_for()
    page.wait_for_load_state("networkidle")

    assert refused == []
    assert visible_links_elsewhere(page) == []
