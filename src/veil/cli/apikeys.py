"""`veil apikey create|list|revoke`: operator commands on the server machine, straight on the database.

A key's secret is printed once, when it is made; the database keeps only its SHA-256 hash, so a lost key
cannot be shown again, only revoked and replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from veil.core.db import create_db_engine, migrate, session_scope
from veil.core.keys import create_api_key, revoke_api_key
from veil.core.models import ApiKey
from veil.core.settings import get_settings

__all__ = ["apikey_app"]

apikey_app = typer.Typer(
    help="Create, list and revoke API keys (on the server machine; talks to the database directly).",
    no_args_is_help=True,
)


@contextmanager
def _database() -> Iterator[Session]:
    """A session on the configured database, brought to the newest schema first (a fresh machine may
    make its keys before it ever ran `veil serve`)."""
    url = get_settings().database_url
    migrate(url)
    engine = create_db_engine(url)
    try:
        with session_scope(sessionmaker(engine, expire_on_commit=False)) as session:
            yield session
    finally:
        engine.dispose()


@apikey_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for, shown in listings.")],
    admin: Annotated[bool, typer.Option("--admin", help="The key sees every key's files and tasks.")] = False,
) -> None:
    """Make a key and print it, with the secret that signs its callbacks. Both are shown only now."""
    with _database() as session:
        new = create_api_key(session, name=name, admin=admin)
        key_id, callback_secret = new.record.id, new.record.callback_secret
    kind = "admin key" if admin else "key"
    typer.echo(
        f"Created {kind} {key_id} ({name}). It is shown only this once; only its hash is stored.\n"
        f"API key:         {new.secret}\n"
        f"callback secret: {callback_secret}  (verifies the HMAC-SHA256 signature of this key's callbacks)"
    )


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@apikey_app.command("list")
def list_keys() -> None:
    """List every key, with its usage counters; secrets are never shown."""
    table = Table(show_header=True)
    for column in ("id", "name", "prefix", "admin", "created", "revoked", "files", "bytes", "frames"):
        table.add_column(column, no_wrap=column in ("id", "prefix", "created", "revoked"))
    with _database() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)):
            table.add_row(
                key.id, escape(key.name), f"{key.prefix}…", "yes" if key.is_admin else "no",
                _when(key.created_at), _when(key.revoked_at),
                str(key.files_processed), str(key.bytes_processed), str(key.frames_processed),
            )  # fmt: skip
    Console().print(table)


@apikey_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id, as `list` shows it.")],
) -> None:
    """Revoke a key: requests with it are refused from now on. Its files and tasks stay."""
    with _database() as session:
        found = revoke_api_key(session, key_id=key_id)
    if not found:
        typer.echo(f"error: no API key with id {key_id}.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked key {key_id}.")
