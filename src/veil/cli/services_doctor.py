"""`veil doctor --services`: can this host reach what its settings name? The database, the broker,
storage, the rate-limit counters when they are shared, and the file root of BlurIt-style `file` paths
(which every worker must see the same, mounted at the same place)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from limits.storage import storage_from_string
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from veil.core.database.connection import has_veil_tables, printable_url
from veil.core.services.health import broker_problem
from veil.core.settings import Settings
from veil.core.storage import StorageUnavailableError, open_storage

__all__ = ["check_services"]

BROKER_TIMEOUT_S = 5.0

Check = Callable[[], str | None]
"""None when the service is usable, else what is wrong, in plain words."""


def check_services(console: Console, settings: Settings) -> bool:
    """Prints one row per service with what is wrong; returns whether every one is usable."""
    rows: list[tuple[str, str, Check]] = [
        ("database", printable_url(settings.database_url), lambda: _database(settings.database_url)),
        (
            "broker",
            printable_url(settings.broker_url),
            lambda: broker_problem(settings.broker_url, timeout_s=BROKER_TIMEOUT_S, details=True),
        ),
        ("storage", settings.storage_url or str(settings.storage_dir), lambda: _storage(settings)),
        ("file root", str(settings.file_root_dir), lambda: _file_root(settings.file_root_dir)),
    ]
    if not settings.rate_limit_storage.startswith("memory://"):
        shown = printable_url(settings.rate_limit_storage)
        rows.append(("rate limits", shown, lambda: _rate_limits(settings.rate_limit_storage)))
    table = Table(title="Services (veil doctor --services)")
    for column in ("service", "where", "status"):
        table.add_column(column)
    ok = True
    for name, where, check in rows:
        problem = check()
        ok = ok and problem is None
        table.add_row(name, where, "[green]ok[/green]" if problem is None else f"[red]{problem}[/red]")
    console.print(table)
    console.print("[green]every service answers[/green]" if ok else "[red]some services are not usable[/red]")
    return ok


def _database(url: str) -> str | None:
    try:
        found = has_veil_tables(url)
    except ImportError as exc:
        return f"the database driver is not installed: {exc}"
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"cannot connect: {reason}"
    if not found:
        return "connected, but it holds no Veil tables yet: `veil serve` (any role) creates them"
    return None


def _storage(settings: Settings) -> str | None:
    try:
        open_storage(settings).check()
    except StorageUnavailableError as exc:
        return str(exc)
    return None


def _file_root(root: Path) -> str | None:
    """BlurIt-style `file` paths are read and written below it by the API (checks) and the workers."""
    if not root.is_dir():
        return "does not exist or is no folder: create it, and mount the same one on every worker"
    probe = root / f".veil-doctor-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"cannot be written ({exc.strerror}): workers write BlurIt outputs below it"
    if not os.access(root, os.R_OK | os.X_OK):
        return "cannot be read: workers read BlurIt inputs below it"
    return None


def _rate_limits(uri: str) -> str | None:
    try:
        reachable = storage_from_string(uri).check()
    except Exception as exc:  # the storage's client raises its own kinds: any means unusable
        return f"cannot use the rate-limit storage: {exc}"
    return None if reachable else "the rate-limit storage does not answer"
