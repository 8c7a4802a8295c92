"""Task API load: submission latency with concurrent clients, then a queue of tasks drained with none lost.

Starts `veil serve --workers 0` on a fresh data dir under /tmp (so submissions pile up in the queue), uploads
one small photo, and has `--clients` concurrent clients submit `--tasks` `detect` tasks in all, timing each
POST /v1/tasks. Then starts `--workers` `veil worker` processes and waits until every task is final,
checking that each one completed with exactly one generated file.

    .venv/bin/python bench/api_load.py --clients 50 --tasks 1000 --workers 1
"""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api_server import VEIL, running_api, stop
from veil.core.db import session_scope
from veil.core.models import StoredFile, Task


def small_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


async def submit_all(
    url: str, headers: dict[str, str], file_id: str, clients: int, tasks: int
) -> list[float]:
    """Latencies in seconds of every submission; each client sends its share one after another."""
    body = {"operation": "detect", "input": file_id, "parameters": {"detectors": ["face"]}}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:

        async def one_client(count: int) -> None:
            for _ in range(count):
                started = time.perf_counter()
                response = await client.post("/v1/tasks", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    raise SystemExit(f"submission failed: {response.status_code} {response.text}")

        shares = [tasks // clients + (1 if i < tasks % clients else 0) for i in range(clients)]
        await asyncio.gather(*(one_client(share) for share in shares))
    return latencies


def task_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with session_scope(sessions) as session:
        rows = session.execute(select(Task.status, func.count()).group_by(Task.status)).all()
        return {str(status): int(count) for status, count in rows}


def outputs_per_task(sessions: sessionmaker[Session]) -> dict[int, int]:
    """How many tasks have 0, 1, 2... generated files."""
    with session_scope(sessions) as session:
        per_task = (
            select(Task.id, func.count(StoredFile.id).label("n"))
            .outerjoin(StoredFile, StoredFile.task_id == Task.id)
            .group_by(Task.id)
            .subquery()
        )
        rows = session.execute(select(per_task.c.n, func.count()).group_by(per_task.c.n)).all()
        return {int(n): int(count) for n, count in rows}


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(np.asarray(values), share * 100))


def run(clients: int, tasks: int, workers: int, data_dir: Path) -> dict[str, Any]:
    with running_api(data_dir) as api, api.log_path.open("ab") as log:
        upload = httpx.post(
            f"{api.url}/v1/files", headers=api.headers, files={"file": ("bench.jpg", small_jpeg())}
        )
        file_id = upload.json()["id"]
        began = time.perf_counter()
        latencies = asyncio.run(submit_all(api.url, api.headers, file_id, clients, tasks))
        submit_s = time.perf_counter() - began
        queued = task_counts(api.sessions)

        began = time.perf_counter()
        started_workers = [
            subprocess.Popen([VEIL, "worker"], env=api.env, stdout=log, stderr=log) for _ in range(workers)
        ]
        try:
            while task_counts(api.sessions).get("queued", 0) + task_counts(api.sessions).get("started", 0):
                time.sleep(0.5)
        finally:
            stop(started_workers)
        drain_s = time.perf_counter() - began
        return {
            "clients": clients,
            "tasks": tasks,
            "submissions_per_s": tasks / submit_s,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000,
            "queued_after_submit": queued,
            "workers": workers,
            "drain_s": drain_s,
            "drained_per_s": tasks / drain_s,
            "final_statuses": task_counts(api.sessions),
            "tasks_by_generated_files": outputs_per_task(api.sessions),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="veil-api-load-") as folder:
        result = run(args.clients, args.tasks, args.workers, Path(folder))
    for name, value in result.items():
        print(f"{name:>26}: {value:.1f}" if isinstance(value, float) else f"{name:>26}: {value}")
    lost = result["tasks"] - result["final_statuses"].get("completed", 0)
    if lost or set(result["tasks_by_generated_files"]) != {1}:
        raise SystemExit(f"{lost} tasks did not complete, or some have other than one output")


if __name__ == "__main__":
    main()
