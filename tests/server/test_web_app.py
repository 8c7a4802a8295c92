"""The manager web app is served by the API's own server: `/` its page, `/app/...` its assets."""

from __future__ import annotations

from fastapi.testclient import TestClient

from veil.server.main import WEB_DIR


def test_the_root_serves_the_manager_page(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (WEB_DIR / "index.html").read_text()


def test_assets_are_served_under_app(client: TestClient) -> None:
    asset = next(path for path in sorted(WEB_DIR.iterdir()) if path.is_file())

    response = client.get(f"/app/{asset.name}")

    assert response.status_code == 200
    assert response.content == asset.read_bytes()
    assert client.get("/app/no-such-file.js").status_code == 404


def test_the_web_app_is_not_in_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert "/" not in paths
    assert not any(path.startswith("/app") for path in paths)
