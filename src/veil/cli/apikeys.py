"""`veil apikey create|list|revoke`: operator commands on the server machine, straight on the database.

A key's secret is printed once, when it is made; the database keeps only its SHA-256 hash, so a lost key
cannot be shown again, only revoked and replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from veil.cli.installation import announce_installation, require_database
from veil.cli.progress import human_bytes
from veil.core.database.connection import create_db_engine, migrate, session_scope
from veil.core.database.models import ApiKey
from veil.core.errors import InvalidInputError
from veil.core.services.keys import checked_file_root, create_api_key, key_file_root, revoke_api_key
from veil.core.settings import get_settings

__all__ = ["apikey_app"]

apikey_app = typer.Typer(
    help="Create, list and revoke API keys (on the server machine; talks to the database directly).",
    no_args_is_help=True,
)


@contextmanager
def _database() -> Iterator[Session]:
    """A session on the installation's database, brought to the newest schema first. Says which
    installation it is, and ends the command where there is no Veil database rather than make an empty one
    that the server would not use."""
    settings = get_settings()
    announce_installation(settings)
    require_database(settings)
    url = settings.database_url
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
    file_root: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="An existing directory its BlurIt-style paths are relative to, possibly outside "
            "VEIL_FILE_ROOT. Default: its own folder VEIL_FILE_ROOT/<key id> (admin keys: all of "
            "VEIL_FILE_ROOT).",
        ),
    ] = None,
) -> None:
    """Make a key and print it, with the secret that signs its callbacks. Both are shown only now."""
    settings = get_settings()
    try:
        root = None if file_root is None else checked_file_root(str(file_root.absolute()), settings)
    except InvalidInputError as exc:
        typer.echo(f"error: --file-root {file_root}: {'; '.join(exc.errors['file_root'])}.", err=True)
        raise typer.Exit(1) from None
    with _database() as session:
        new = create_api_key(session, name=name, admin=admin, file_root=root)
        key_id, callback_secret = new.record.id, new.record.callback_secret
        files = key_file_root(new.record, settings.file_root_dir).path
    kind = "admin key" if admin else "key"
    typer.echo(
        f"Created {kind} {key_id} ({name}). It is shown only this once; only its hash is stored.\n"
        f"API key:         {new.secret}\n"
        f"callback secret: {callback_secret}  (verifies the HMAC-SHA256 signature of this key's callbacks)\n"
        f"file root:       {files}  (its BlurIt-style paths are relative to this directory)"
    )


def _day(moment: datetime | None) -> str:
    return "" if moment is None else moment.date().isoformat()


def _keys_table() -> Table:
    """Two lines per key, so that a listing fits 80 columns without cutting ids or prefixes, which are
    copied from it: id over prefix, name over "(admin)", created over revoked; the name wraps."""
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("id\nprefix", no_wrap=True)
    table.add_column("name", overflow="fold", ratio=1)
    table.add_column("created\nrevoked", no_wrap=True)
    for column in ("files", "bytes", "frames"):
        table.add_column(column, justify="right", no_wrap=True)
    return table


@apikey_app.command("list")
def list_keys() -> None:
    """List every key, with its usage counters; secrets are never shown."""
    table = _keys_table()
    with _database() as session:
        for key in session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)):
            table.add_row(
                f"{key.id}\n{key.prefix}…", escape(key.name) + ("\n(admin)" if key.is_admin else ""),
                f"{_day(key.created_at)}\n{_day(key.revoked_at)}",
                str(key.files_processed), human_bytes(key.bytes_processed), str(key.frames_processed),
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
