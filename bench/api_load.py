"""Task API load: submission latency with concurrent clients, then a queue of tasks drained with none lost.

Starts `veil serve --workers 0` on a fresh data dir under /tmp (so submissions pile up in the queue), uploads
one small photo, and has `--clients` concurrent clients submit `--tasks` `detect` tasks in all, timing each
POST /v1/tasks. Then starts `--workers` `veil worker` processes and waits until every task is final,
checking that each one completed with exactly one generated file (`--workers 0` stops after submitting).

With `--services`, the database is PostgreSQL and the broker and rate limits Redis, both made for the run,
and `--api-processes` `veil serve --role api` processes share the clients (client i talks to process
i mod N). Besides the rates it reports the CPU one submission costs the API processes and the clients
(robust to whatever else the machine runs), and the load average around the run.

    .venv/bin/python bench/api_load.py --clients 50 --tasks 1000 --workers 1
    .venv/bin/python bench/api_load.py --services --api-processes 2 --clients 50 --tasks 1000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api_server import VEIL, running_api, services, stop
from veil.core.database.connection import session_scope
from veil.core.database.models import StoredFile, Task


def small_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


async def submit_all(
    urls: Sequence[str], headers: dict[str, str], file_id: str, clients: int, tasks: int
) -> list[float]:
    """Latencies in seconds of every submission; each client sends its share one after another, client i
    to `urls[i % len(urls)]`, on a connection of its own."""
    body = {"operation": "detect", "input": file_id, "parameters": {"detectors": ["face"]}}
    latencies: list[float] = []

    async def one_client(index: int, count: int) -> None:
        url = f"{urls[index % len(urls)]}/v1/tasks"
        # A client each, as separate users would be: one client shared by all costs more CPU per request
        # than the API does, as its connection pool is searched at every request.
        async with httpx.AsyncClient(headers=headers, timeout=60) as client:
            for _ in range(count):
                started = time.perf_counter()
                response = await client.post(url, json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    raise SystemExit(f"submission failed: {response.status_code} {response.text}")

    shares = [tasks // clients + (1 if i < tasks % clients else 0) for i in range(clients)]
    await asyncio.gather(*(one_client(index, share) for index, share in enumerate(shares)))
    return latencies


def cpu_seconds(processes: Sequence[subprocess.Popen[bytes]]) -> float:
    """User and system CPU the processes used so far (Linux /proc)."""
    ticks = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


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


def run(
    clients: int, tasks: int, workers: int, data_dir: Path, env_extra: dict[str, str], processes: int
) -> dict[str, Any]:
    with (
        running_api(data_dir, env_extra=env_extra, processes=processes) as api,
        api.log_path.open("ab") as log,
    ):
        upload = httpx.post(
            f"{api.url}/v1/files", headers=api.headers, files={"file": ("bench.jpg", small_jpeg())}
        )
        file_id = upload.json()["id"]
        load_before = os.getloadavg()[0]
        began, cpu_before = time.perf_counter(), cpu_seconds(api.processes)
        client_cpu_before = time.process_time()
        latencies = asyncio.run(submit_all(api.urls, api.headers, file_id, clients, tasks))
        submit_s, api_cpu_s = time.perf_counter() - began, cpu_seconds(api.processes) - cpu_before
        client_cpu_s = time.process_time() - client_cpu_before
        queued = task_counts(api.sessions)
        submitted = {
            "database": "postgresql" if env_extra else "sqlite",
            "api_processes": len(api.urls),
            "clients": clients,
            "tasks": tasks,
            "submissions_per_s": tasks / submit_s,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000,
            # What one submission costs the API processes, whatever else the machine runs meanwhile.
            "api_cpu_ms_per_submission": api_cpu_s / tasks * 1000,
            # The clients share the machine's cores with the API: on a small machine they bound the rate.
            "client_cpu_ms_per_submission": client_cpu_s / tasks * 1000,
            "load_average_1m": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
            "queued_after_submit": queued,
        }
        if not workers:
            return submitted

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
            **submitted,
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
    parser.add_argument("--services", action="store_true", help="PostgreSQL and Redis, made for the run")
    parser.add_argument("--api-processes", type=int, default=1, help="with --services")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="veil-api-load-") as folder, contextlib.ExitStack() as stack:
        env_extra = stack.enter_context(services(Path(folder))) if args.services else {}
        processes = args.api_processes if args.services else 0
        result = run(args.clients, args.tasks, args.workers, Path(folder), env_extra, processes)
    for name, value in result.items():
        print(f"{name:>28}: {value:.1f}" if isinstance(value, float) else f"{name:>28}: {value}")
    if not args.workers:
        return
    lost = result["tasks"] - result["final_statuses"].get("completed", 0)
    if lost or set(result["tasks_by_generated_files"]) != {1}:
        raise SystemExit(f"{lost} tasks did not complete, or some have other than one output")


if __name__ == "__main__":
    main()
