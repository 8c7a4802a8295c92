"""The interactive API documentation, `/docs` (Swagger UI) and `/redoc` (ReDoc), served without internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google), so on a machine
without internet `/docs` is blank. Here the scripts, stylesheet and icon come from the `fastapi-offline`
package, installed with Veil, and are served under `/docs-assets/`. ReDoc's side menu also shows Redocly's
logo from Redocly's CDN beside a link to Redocly: both pages carry a Content-Security-Policy that lets the
browser load nothing from another host, and the link is hidden.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_DIR", "ASSETS_PATH", "install_docs"]

ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
"""Swagger UI's bundle and stylesheet, ReDoc's standalone script and an icon, as the package ships them."""
ASSETS_PATH = "/docs-assets"

# Swagger UI and ReDoc start from an inline script and style their elements inline; everything else,
# including what their scripts fetch (the API document) and the workers ReDoc starts, is this server's.
_SAME_HOST_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:"
)
_HIDE_REDOCLY_LINK = '<style>a[href*="redocly"] { display: none !important; }</style></head>'


def install_docs(app: FastAPI) -> None:
    """Adds `/docs`, `/redoc` and their assets to `app`, which was made with `docs_url=None, redoc_url=None`.
    Neither page is in the API document."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # Swagger UI would otherwise ask validator.swagger.io to check the document.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _same_host_only(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        html = bytes(page.body).decode().replace("</head>", _HIDE_REDOCLY_LINK, 1)
        return _same_host_only(HTMLResponse(html))


def _root_path(request: Request) -> str:
    """The prefix a reverse proxy serves Veil under (uvicorn --root-path), as FastAPI's own pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _same_host_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _SAME_HOST_ONLY
    return page
