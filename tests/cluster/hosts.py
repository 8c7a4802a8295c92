"""Other hosts on this machine: network namespaces, each joined to this one by a veth pair on a private
bridge, and the few things a process in one of them needs to reach a service of this host.

The namespaces see this host at `Network.host_address` (the bridge's address) and nothing else of its
network: not its loopback, where the local PostgreSQL listens, so `tcp_forward` relays a port of the
bridge address to it. Everything is made for the test and removed after, even when the test fails. Making
namespaces needs root and `ip` (iproute2); without them the test fails with the command it needs.
"""

from __future__ import annotations

import ipaddress
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

__all__ = ["Network", "private_network", "tcp_forward"]

_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Network:
    """The bridge's address on this host, and each namespace with its own address."""

    host_address: str
    namespaces: dict[str, str]

    def command(self, namespace: str, hostname: str, setup: list[str], argv: list[str]) -> list[str]:
        """`argv` run in `namespace` under its own host name, with a mount namespace of its own in which
        the shell commands `setup` run first (mounts there are seen by nobody else)."""
        script = " && ".join([f"hostname {hostname}", *setup, 'exec "$@"'])
        return ["ip", "netns", "exec", namespace, "unshare", "--uts", "sh", "-c", script, "sh", *argv]

    def reach(self, namespace: str, port: int) -> None:
        """Returns once a process in `namespace` can open a TCP connection to the host's `port`."""
        probe = f"import socket; socket.create_connection(({self.host_address!r}, {port}), timeout=2).close()"
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        while True:
            command = ["ip", "netns", "exec", namespace, sys.executable, "-c", probe]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{namespace} cannot reach {self.host_address}:{port}: {done.stderr}")
            time.sleep(0.2)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def _require_root_and_ip() -> None:
    if shutil.which("ip") is None:
        raise AssertionError("this test needs `ip` from iproute2 (apt-get install iproute2) and root")
    if os.geteuid() != 0:
        raise AssertionError(
            "this test makes network namespaces, which needs root: run it as root, e.g. "
            "`sudo .venv/bin/pytest tests/cluster/test_several_hosts.py` (it runs `ip netns add`, "
            "`ip link add ... type veth` and `unshare --uts`)"
        )


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no route of this host covers."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    used = [ipaddress.ip_network(word, strict=False) for word in routes.stdout.split() if "/" in word]
    for _ in range(100):
        subnet = ipaddress.ip_network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")
        if not any(subnet.overlaps(route) for route in used):
            return subnet
    raise AssertionError(f"no free /24 in 10.100.0.0-10.250.255.0 among the routes:\n{routes.stdout}")


@contextmanager
def private_network(count: int) -> Iterator[Network]:
    """`count` network namespaces on a bridge of their own; removed after, whatever happens."""
    _require_root_and_ip()
    token = secrets.token_hex(3)
    subnet = _free_subnet()
    addresses = [str(address) for address in subnet.hosts()]
    bridge = f"vb{token}"
    namespaces = {f"veil-{token}-{n}": addresses[n + 1] for n in range(count)}
    with ExitStack() as undo:
        _ip("link", "add", bridge, "type", "bridge")
        undo.callback(subprocess.run, ["ip", "link", "del", bridge], capture_output=True)
        _ip("addr", "add", f"{addresses[0]}/{subnet.prefixlen}", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for n, (namespace, address) in enumerate(namespaces.items()):
            _ip("netns", "add", namespace)
            # Deleting the namespace deletes the veth pair with it.
            undo.callback(subprocess.run, ["ip", "netns", "del", namespace], capture_output=True)
            outside, inside = f"vh{token}{n}", f"vn{token}{n}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", namespace, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        yield Network(addresses[0], namespaces)


@contextmanager
def tcp_forward(host: str, target: str) -> Iterator[int]:
    """A spare port on `host` (an address of this machine) relayed to `target` (host:port) by socat;
    yields the port once it accepts connections."""
    binary = shutil.which("socat")
    if binary is None:
        raise AssertionError("this test needs socat (apt-get install socat)")
    with socket.socket() as probe:
        probe.bind((host, 0))
        port = int(probe.getsockname()[1])
    relay = subprocess.Popen(
        [binary, f"TCP-LISTEN:{port},bind={host},reuseaddr,fork", f"TCP:{target}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        while True:
            try:
                socket.create_connection((host, port), timeout=1).close()
                break
            except OSError:
                if relay.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"socat did not listen on {host}:{port}") from None
                time.sleep(0.05)
        yield port
    finally:
        relay.kill()
        relay.wait()
