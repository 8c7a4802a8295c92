"""Many more submissions at once than the API has threads or database connections: a request waiting for its
next thread holds no connection, so none waits for one that only a waiting request could give back."""

from __future__ import annotations

import asyncio
import io

import anyio.to_thread
import httpx
from PIL import Image

from tests.helpers import RecordingQueue, noise_image
from veil.core.settings import Settings
from veil.server.main import create_app

SUBMISSIONS = 60
"""Beyond the SQLite pool (5 connections and 10 more) plus the threads."""
THREADS = 2


async def submit_at_once(settings: Settings, queue: RecordingQueue, headers: dict[str, str]) -> list[int]:
    app = create_app(settings, queue=queue)  # type: ignore[arg-type]
    photo = io.BytesIO()
    Image.fromarray(noise_image(32, 24)).save(photo, format="PNG")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://veil") as client,
    ):
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        upload = await client.post(
            "/v1/files", headers=headers, files={"file": ("p.png", photo.getvalue(), "image/png")}
        )
        body = {"operation": "detect", "input": upload.json()["id"]}
        submissions = (client.post("/v1/tasks", headers=headers, json=body) for _ in range(SUBMISSIONS))
        # A request holding a connection while it waits for a thread stalls the others for the pool's
        # 30 s timeout, and then fails.
        responses = await asyncio.wait_for(asyncio.gather(*submissions), timeout=15)
    return [response.status_code for response in responses]


def test_submissions_beyond_the_threads_and_connections_all_complete(
    settings: Settings, queue: RecordingQueue, alice: dict[str, str]
) -> None:
    assert asyncio.run(submit_at_once(settings, queue, alice)) == [202] * SUBMISSIONS
    assert len(set(queue.task_ids)) == SUBMISSIONS
