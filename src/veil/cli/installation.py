"""Which installation a server-side command works on: `veil serve`, `veil worker` and `veil apikey` say it
first, and `veil apikey` and `veil worker` refuse to work where there is no Veil database yet."""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from veil.core.database.connection import has_veil_tables, printable_url
from veil.core.settings import Settings

__all__ = ["announce_installation", "installation_line", "require_database"]


def installation_line(settings: Settings) -> str:
    """The data directory and the database URL, its password masked, on one line."""
    return f"data directory: {settings.data_dir}  database: {printable_url(settings.database_url)}"


def announce_installation(settings: Settings) -> None:
    """Prints the installation line on stderr, where it stays out of what a command prints for scripts."""
    typer.echo(installation_line(settings), err=True)


def require_database(settings: Settings) -> None:
    """Ends the command (status 1) unless the database already holds Veil's tables: making keys in a new,
    empty database by mistake (another directory, a missing VEIL_DATA_DIR) would leave the server without
    them."""
    url = printable_url(settings.database_url)
    try:
        found = has_veil_tables(settings.database_url)
    except (SQLAlchemyError, ImportError) as exc:  # ImportError: the URL's database driver is not installed
        typer.echo(f"error: cannot open the database {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if not found:
        typer.echo(
            f"error: no Veil database at {url}; run `veil serve` once to create it, or set VEIL_DATA_DIR "
            "(or VEIL_DATABASE_URL) to the installation's.",
            err=True,
        )
        raise typer.Exit(1)
