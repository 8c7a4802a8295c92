"""`veil flower`: Celery Flower on Veil's Celery app, showing workers, queues and tasks as they run.

Flower can cancel and restart tasks and workers, so it never listens beyond this machine without asking
who is there: on any address but loopback it needs VEIL_FLOWER_BASIC_AUTH. Workers report to it through
the broker's events, which Redis and RabbitMQ carry; the embedded SQLite broker carries none, so there
Flower shows little.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from veil.cli.installation import announce_installation
from veil.core.queue import create_celery
from veil.core.settings import get_settings

__all__ = ["flower", "is_loopback"]

DEFAULT_PORT = 5555


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine: "localhost" or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def flower(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.", min=1, max=65535)] = DEFAULT_PORT,
) -> None:
    """Monitor workers, queues and tasks in Celery Flower (web). Beyond loopback it asks for the user and
    password of VEIL_FLOWER_BASIC_AUTH ("user:password", several separated by commas)."""
    settings = get_settings()
    auth = settings.flower_basic_auth
    if auth is None and not is_loopback(host):
        typer.echo(
            f"error: Flower would listen on {host} with no authentication, and anyone reaching it could "
            "stop tasks and workers. Set VEIL_FLOWER_BASIC_AUTH=user:password, or listen on 127.0.0.1 "
            "(behind a proxy that authenticates).",
            err=True,
        )
        raise typer.Exit(2)
    announce_installation(settings)
    # Passed in-process, so the password is not on a command line other users can read.
    argv = ["flower", f"--address={host}", f"--port={port}"]
    if auth is not None:
        argv.append(f"--basic-auth={auth.get_secret_value()}")
    create_celery(settings).start(argv)
