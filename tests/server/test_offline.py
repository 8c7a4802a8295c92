"""Veil works without internet: the pages it serves (the manager, /docs, /redoc) and every script and
stylesheet they load come from Veil itself, and none of them names another host.

The crawl starts at the pages and follows what each file loads: HTML `src`/`href`/`srcset`/`spec-url`
attributes, CSS `url()` and `@import` (in style sheets and `style` attributes), JavaScript module imports,
and the OpenAPI document both docs pages render. Source map comments are checked for their host but not
fetched (only developer tools ask for them). Veil's own files may not name another host at all, links
included, and neither may any HTML attribute, any style sheet outside its `data:` URLs, nor the OpenAPI
document (ReDoc shows a logo or a Markdown image from there). Swagger UI's and ReDoc's bundles are
third-party minified code full of strings that look like URLs (XML namespaces, JSON Schema ids, links in
their messages) and load nothing by themselves: for those the browser test (tests/web/test_offline_docs.py)
checks, with the network blocked, that rendering the pages requests nothing from another host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

ORIGIN = "http://testserver"
PAGES = ["/", "/docs", "/redoc"]
THIRD_PARTY = ("swagger-ui-bundle.js", "redoc.standalone.js")
# Any absolute or scheme-relative URL with a host: http://x, https://x, //x.
_HOST_URL = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*:)?//[A-Za-z0-9][A-Za-z0-9.-]*""")
# A module specifier a browser loads is a path or a URL; words in strings ("Images from", kind: "import")
# are not imports.
_JS_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["']((?:\.{0,2}/|[a-z][a-z0-9+.-]*:)[^"']*)["']""")
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)|@import\s+["']([^"']+)["']""")
_CSS_DATA_URL = re.compile(r"""url\(\s*["']?data:[^)]*\)""")
# `//# sourceMappingURL=x.map` on a line of its own, or `/*# sourceMappingURL=x.map */`.
_SOURCE_MAP = re.compile(r"""(?m)^\s*(?://|/\*)[#@]\s*sourceMappingURL=([^\s*]+)""")
_URL_ATTRIBUTES = {
    "src",
    "href",
    "xlink:href",
    "action",
    "formaction",
    "poster",
    "data",
    "srcset",
    "spec-url",
}


@dataclass
class References:
    """What a served file refers to: `loads` are fetched by the crawl, `maps` only checked for their host,
    and `texts` may not name another host at all."""

    loads: list[str] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


class _HTMLReferences(HTMLParser):
    """The URLs an HTML page loads from attributes and `style` attributes; every attribute value and the
    inline script and style text, to search for hosts."""

    def __init__(self) -> None:
        super().__init__()
        self.found = References()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if not value:
                continue
            self.found.texts.append(value)
            if name == "srcset":  # "a.png 1x, b.png 2x"
                self.found.loads.extend(part.split()[0] for part in value.split(",") if part.strip())
            elif name == "style":
                self.found.loads.extend(_css_urls(value))
            elif name in _URL_ATTRIBUTES:
                self.found.loads.append(value.strip())

    def handle_data(self, data: str) -> None:
        self.found.texts.append(data)


def _css_urls(text: str) -> list[str]:
    urls = [first or second for first, second in _CSS_URL.findall(text)]
    return [url.strip() for url in urls if not url.strip().startswith("data:")]


def references(path: str, media_type: str, text: str) -> References:
    """What a served file refers to, by its type."""
    maps = _SOURCE_MAP.findall(text)
    if "html" in media_type:
        parser = _HTMLReferences()
        parser.feed(text)
        return parser.found
    if "css" in media_type:
        return References(_css_urls(text), maps, [_CSS_DATA_URL.sub("", text)])
    if "javascript" in media_type and path.endswith(THIRD_PARTY):  # bundles import nothing; see above
        return References(maps=maps)
    if "javascript" in media_type:
        return References(_JS_IMPORT.findall(text), maps, [text])
    if "json" in media_type:
        return References(texts=[text])
    return References()


def _is_foreign(url: str, base: str) -> bool:
    absolute = urlsplit(urljoin(ORIGIN + base, url))
    return absolute.scheme != "data" and f"{absolute.scheme}://{absolute.netloc}" != ORIGIN


def _own_paths(urls: list[str], base: str) -> list[str]:
    """The paths of those of `urls` that Veil serves (not `data:`, not another host)."""
    absolute = [urlsplit(urljoin(ORIGIN + base, url)) for url in urls]
    return [url.path for url in absolute if f"{url.scheme}://{url.netloc}" == ORIGIN]


def foreign_references(path: str, found: References) -> list[str]:
    """Each thing in `found` that names another host, saying how."""
    named = [f"{path} loads {url}" for url in found.loads if _is_foreign(url, path)]
    named += [f"{path} maps to {url}" for url in found.maps if _is_foreign(url, path)]
    return named + [f"{path} names {match}" for text in found.texts for match in _HOST_URL.findall(text)]


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
        found = references(path, response.headers["content-type"], response.text)
        foreign.extend(foreign_references(path, found))
        queue.extend(_own_paths(found.loads, path))
    return seen, foreign


def test_no_page_script_or_stylesheet_refers_to_another_host(client: TestClient) -> None:
    served, foreign = crawl(client)

    assert foreign == []
    # The crawl reached what each page needs: the manager's modules and styles, both docs pages' assets.
    assert {"/app/app.js", "/app/api.js", "/app/style.css"} <= served
    assert {path.rsplit("/", 1)[-1] for path in served} >= {"swagger-ui.css", "openapi.json", *THIRD_PARTY}


@pytest.mark.parametrize(
    ("media_type", "text"),
    [
        ("text/html", '<link rel="preconnect" href="https://fonts.example.com">'),
        ("text/html", '<img srcset="/a.png 1x, https://cdn.example.com/b.png 2x">'),
        ("text/html", '<div style="background: url(https://cdn.example.com/bg.png)"></div>'),
        ("text/html", '<svg><image xlink:href="//cdn.example.com/x.svg"/></svg>'),
        ("text/html", '<meta http-equiv="refresh" content="0; url=https://elsewhere.example.com/">'),
        ("text/html", '<redoc spec-url="https://api.example.com/openapi.json"></redoc>'),
        ("text/html", "<style>@import url(https://fonts.example.com/css?family=Inter);</style>"),
        ("text/css", "@import url('https://fonts.example.com/css?family=Inter');"),
        ("text/css", "@font-face { src: url(//fonts.example.com/inter.woff2) format('woff2'); }"),
        ("text/css", "body { color: red }\n/*# sourceMappingURL=https://cdn.example.com/style.css.map */"),
        ("text/javascript", "export {};\n//# sourceMappingURL=https://cdn.example.com/app.js.map"),
        ("text/javascript", "import { x } from 'https://cdn.example.com/x.js';"),
        ("application/json", '{"info": {"x-logo": {"url": "https://cdn.example.com/logo.png"}}}'),
        ("application/manifest+json", '{"icons": [{"src": "https://cdn.example.com/icon.png"}]}'),
    ],
)
def test_the_crawl_finds_each_way_a_file_can_refer_to_another_host(media_type: str, text: str) -> None:
    assert foreign_references("/app/x", references("/app/x", media_type, text)) != []


def test_a_third_party_bundle_is_checked_for_its_source_map() -> None:
    bundle = "var a='http://www.w3.org/2000/svg';\n//# sourceMappingURL=https://cdn.example.com/b.js.map"

    found = references("/docs-assets/redoc.standalone.js", "text/javascript", bundle)

    assert foreign_references("/docs-assets/redoc.standalone.js", found) == [
        "/docs-assets/redoc.standalone.js maps to https://cdn.example.com/b.js.map"
    ]
