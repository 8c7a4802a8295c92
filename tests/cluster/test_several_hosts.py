"""Veil on several hosts: the API on this one, two workers each on a host of its own (a network namespace
with its own address, host name and empty data folder, and the other hosts' folders hidden from it), all
sharing only PostgreSQL, Redis and SeaweedFS over the network (tests/cluster/hosts.py).

The workers run `veil worker` with the test clips' fake face detector (tests/worker/fake_face_worker.py),
so a photo's or frame's white square is its face.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.cluster.conftest import Cluster, Process, cluster_env, until
from tests.cluster.hosts import Network, private_network, tcp_forward
from tests.engine.video_factory import find_square, make_video, square_box, upright_frame
from tests.s3_server import seaweedfs
from tests.services import private_postgres, private_redis
from veil.core.database.models import VideoSegment, WorkerBeat

HOSTS = ("worker-a", "worker-b")
# A 2.4 s clip is cut into five segments of 12 frames (a key frame every 6); a 1.2 s one is not cut.
SPLIT = {"VEIL_SPLIT_MIN_S": "2", "VEIL_SEGMENT_MIN_S": "0.4"}
LONG_FRAMES, SHORT_FRAMES, GOP = 60, 30, 6
VIDEO_PARAMETERS = {"detectors": ["face"], "detect_every": 1}


@dataclass
class Hosts:
    cluster: Cluster
    api: Process
    workers: dict[str, Process]
    folders: dict[str, Path]
    media: Path


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    """The API with SeaweedFS, Redis and the PostgreSQL database on this host; a worker on each of two
    other hosts, with its own empty data folder."""
    shared = tmp_path_factory.mktemp("api-host")
    folders = {name: tmp_path_factory.mktemp(name) for name in HOSTS}
    with (
        private_network(len(HOSTS)) as network,
        seaweedfs(shared / "seaweedfs", host=network.host_address) as s3,
        private_redis(shared, host=network.host_address) as redis_server,
        private_postgres() as database_url,
        tcp_forward(network.host_address, "127.0.0.1:5432") as postgres_port,
    ):
        storage = s3.env(f"s3://{s3.bucket}/several-hosts")
        env = cluster_env(shared, database_url, redis_server.url, **storage, **SPLIT)
        cluster = Cluster(shared, env, database_url)
        try:
            api = cluster.api()
            remote_database = make_url(database_url).set(host=network.host_address, port=postgres_port)
            worker_env = {
                **env,
                "VEIL_DATABASE_URL": remote_database.render_as_string(hide_password=False),
                "VEIL_TEST_DETECT_DELAY_S": "0.03",
            }
            workers = {
                name: _start_worker(cluster, network, namespace, name, folders, shared, worker_env)
                for (namespace, name) in zip(network.namespaces, HOSTS, strict=True)
            }
            for process in workers.values():
                until(lambda p=process: _ready(p), 60, f"{process.name} to be ready:\n{process.output()}")
            media = shared / "media"
            media.mkdir()
            yield Hosts(cluster, api, workers, folders, media)
        finally:
            for process in cluster.processes:  # all stop at once; stop_all then waits for each
                if process.popen.poll() is None:
                    process.popen.send_signal(signal.SIGTERM)
            cluster.stop_all()


def _start_worker(
    cluster: Cluster,
    network: Network,
    namespace: str,
    hostname: str,
    folders: dict[str, Path],
    shared: Path,
    env: dict[str, str],
) -> Process:
    """`veil worker` on `hostname`, in `namespace`, its data in its own folder; the API host's folder and
    the other workers' are covered by empty file systems in its view, so it can read nothing of them."""
    network.reach(namespace, int(str(make_url(env["VEIL_DATABASE_URL"]).port)))
    hidden = [shared, *(folder for name, folder in folders.items() if name != hostname)]
    command = network.command(
        namespace,
        hostname,
        [f"mount -t tmpfs none {folder}" for folder in hidden],
        [sys.executable, "-m", "tests.worker.fake_face_worker", "--queues", "photo,video"],
    )
    log = folders[hostname] / "worker.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command,
            env={
                **{key: value for key, value in os.environ.items() if not key.startswith("VEIL_")},
                **env,
                "VEIL_DATA_DIR": str(folders[hostname] / "data"),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = Process(hostname, popen, log)
    cluster.processes.append(process)
    return process


def _ready(process: Process) -> bool | None:
    if process.popen.poll() is not None:
        raise AssertionError(f"{process.name} exited with {process.popen.returncode}:\n{process.output()}")
    return "ready." in process.output() or None


def _photo(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(upright_frame(index)).save(buffer, format="PNG")
    return buffer.getvalue()


def _submit(hosts: Hosts, key: dict[str, str], name: str, content: bytes, parameters: dict[str, Any]) -> str:
    api = hosts.api.url
    uploaded = httpx.post(f"{api}/v1/files", headers=key, files={"file": (name, content)}, timeout=30)
    assert uploaded.status_code == 201, uploaded.text
    body = {"operation": "anonymize", "input": uploaded.json()["id"], "parameters": parameters}
    submitted = httpx.post(f"{api}/v1/tasks", headers=key, json=body)
    assert submitted.status_code == 202, submitted.text
    return str(submitted.json()["id"])


def _output(hosts: Hosts, key: dict[str, str], task_id: str, name: str) -> bytes:
    task = httpx.get(f"{hosts.api.url}/v1/tasks/{task_id}", headers=key).json()
    (file_id,) = [made["id"] for made in task["result"]["generated_files"] if made["name"] == name]
    content = httpx.get(f"{hosts.api.url}/v1/files/{file_id}/content", headers=key, timeout=30)
    assert content.status_code == 200, content.text
    return content.content


def _frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _ran_on(hosts: Hosts, task_id: str) -> set[str]:
    """The hosts whose worker log says it ran an attempt of the task or of one of its segments."""
    return {name for name, process in hosts.workers.items() if f"task {task_id}: attempt" in process.output()}


def test_workers_on_two_hosts_complete_photos_and_videos(hosts: Hosts) -> None:
    """GIVEN the API on this host and a worker on each of two others, sharing only the network services
    WHEN photos, a short video and a long video (cut into segments) are submitted through the API
    THEN every task completes once, both hosts ran some of the work, the faces are covered in every photo
    and frame, the videos keep their frames, and the hosts' disks hold nothing of it."""
    key = hosts.cluster.new_key("newsroom")
    with hosts.cluster.sessions() as session:
        beating = {str(name).partition(":")[0] for name in session.scalars(select(WorkerBeat.name))}
    assert beating == set(HOSTS)
    long_clip = make_video(hosts.media / "long.mp4", frames=LONG_FRAMES, gop=GOP)
    short_clip = make_video(hosts.media / "short.mp4", frames=SHORT_FRAMES, gop=GOP)
    # Task id: (file name, frame whose square the photo shows).
    photos = {
        _submit(hosts, key, f"p{n}.png", _photo(9 * n), {"detectors": ["face"]}): (f"p{n}.png", 9 * n)
        for n in range(4)
    }
    videos = {
        _submit(hosts, key, clip.path.name, clip.path.read_bytes(), VIDEO_PARAMETERS): clip
        for clip in (long_clip, short_clip)
    }

    tasks = hosts.cluster.wait_finished([*photos, *videos], timeout_s=120)

    assert [(t.status, t.attempts) for t in tasks] == [("completed", 1)] * 6, [t.error for t in tasks]
    long_task = next(task_id for task_id, clip in videos.items() if clip is long_clip)
    with hosts.cluster.sessions() as session:
        segments = session.scalars(select(VideoSegment).where(VideoSegment.task_id == long_task)).all()
    assert len(segments) == 5
    segment_hosts = {str(segment.worker).partition(":")[0] for segment in segments}
    ran = set().union(segment_hosts, *(_ran_on(hosts, task_id) for task_id in [*photos, *videos]))
    assert ran == set(HOSTS), "each host's worker ran some of the work"
    for task_id, (name, index) in photos.items():
        before = upright_frame(index)
        after = np.asarray(Image.open(io.BytesIO(_output(hosts, key, task_id, name))))
        x1, y1, x2, y2 = (int(v) for v in square_box(index))
        assert np.abs(after.astype(int) - before)[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5].mean() > 30, task_id
        assert not find_square(after)
    for task_id, clip in videos.items():
        frames = _frames(_output(hosts, key, task_id, clip.path.name))
        assert len(frames) == clip.frame_count, clip.path.name
        assert not any(find_square(frame) for frame in frames), f"a face shows in {clip.path.name}"
    for name, folder in hosts.folders.items():
        left = [path for path in (folder / "data").rglob("*") if path.is_file()]
        assert left == [], f"{name} kept files of the tasks on its disk"
    api_storage = hosts.cluster.directory / "data" / "storage"
    assert not api_storage.exists() or not any(api_storage.rglob("*")), "the API host stored media on disk"
