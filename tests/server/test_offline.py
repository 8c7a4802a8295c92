"""Veil works without internet: the pages it serves (the manager, /docs, /redoc) and every script and
stylesheet they load come from Veil itself, and none of them names another host.

The crawl starts at the pages and follows what each file loads: HTML `src`/`href` attributes, JavaScript
module imports, CSS `url()` and `@import`. Veil's own files may not name another host at all, links
included. Swagger UI's and ReDoc's bundles are third-party minified code full of strings that look like
URLs (XML namespaces, JSON Schema ids, links in their messages) and load nothing by themselves: for those
the browser test (tests/web/test_offline_docs.py) checks, with the network blocked, that rendering the
pages requests nothing from another host.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from fastapi.testclient import TestClient

ORIGIN = "http://testserver"
PAGES = ["/", "/docs", "/redoc"]
THIRD_PARTY = ("swagger-ui-bundle.js", "redoc.standalone.js")
# Any absolute or scheme-relative URL with a host: http://x, https://x, //x.
_HOST_URL = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*:)?//[A-Za-z0-9][A-Za-z0-9.-]*""")
_JS_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']""")
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)|@import\s+["']([^"']+)["']""")
_URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset"}


class _References(HTMLParser):
    """The URLs an HTML page names in attributes, and its inline script and style text."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "srcset" and value:  # "a.png 1x, b.png 2x"
                self.urls.extend(part.split()[0] for part in value.split(",") if part.strip())
            elif name in _URL_ATTRIBUTES and value:
                self.urls.append(value.strip())

    def handle_data(self, data: str) -> None:
        self.inline.append(data)


def references(path: str, media_type: str, text: str) -> tuple[list[str], list[str]]:
    """(URLs the file loads, text that must not name a host) for a served file."""
    if "html" in media_type:
        parser = _References()
        parser.feed(text)
        return parser.urls, ["\n".join(parser.inline)]
    if "css" in media_type:
        urls = [first or second for first, second in _CSS_URL.findall(text)]
        return [url for url in urls if not url.startswith("data:")], []
    if "javascript" in media_type and not path.endswith(THIRD_PARTY):  # bundles import nothing; see above
        return _JS_IMPORT.findall(text), [text]
    return [], []


def crawl(client: TestClient) -> tuple[set[str], list[str]]:
    """(same-origin paths served, references to another host found)."""
    seen: set[str] = set()
    foreign: list[str] = []
    queue = list(PAGES)
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        urls, texts = references(path, response.headers["content-type"], response.text)
        for url in urls:
            absolute = urlsplit(urljoin(ORIGIN + path, url))
            if absolute.scheme == "data":
                continue
            if f"{absolute.scheme}://{absolute.netloc}" != ORIGIN:
                foreign.append(f"{path} loads {url}")
            else:
                queue.append(absolute.path)
        foreign.extend(f"{path} names {match}" for text in texts for match in _HOST_URL.findall(text))
    return seen, foreign


def test_no_page_script_or_stylesheet_refers_to_another_host(client: TestClient) -> None:
    served, foreign = crawl(client)

    assert foreign == []
    # The crawl reached what each page needs: the manager's modules and styles, both docs pages' assets.
    assert {"/app/app.js", "/app/api.js", "/app/style.css"} <= served
    assert {path.rsplit("/", 1)[-1] for path in served} >= {"swagger-ui.css", *THIRD_PARTY}
