"""`veil serve`, `veil worker` and `veil apikey` say which installation they work on; `veil apikey` makes no
database where there is none."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from veil.cli.app import app
from veil.cli.installation import installation_line
from veil.core.database.connection import migrate
from veil.core.settings import Settings, get_settings

runner = CliRunner(env={"COLUMNS": "200"})


class _WorkerApp:
    def worker_main(self, argv: list[str]) -> None:
        self.argv = argv


@pytest.fixture
def worker_app(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """The settings of each worker `veil worker` starts; none actually runs."""
    started: list[Settings] = []

    def create(settings: Settings) -> Any:
        started.append(settings)
        return _WorkerApp()

    monkeypatch.setattr("veil.cli.serve.configure_logging", lambda: None)
    monkeypatch.setattr("veil.cli.serve.create_worker_app", create)
    return started


def _line(settings: Settings) -> str:
    return f"data directory: {settings.data_dir}  database: sqlite:///{settings.data_dir / 'veil.db'}"


@pytest.mark.parametrize(
    "command",
    [["apikey", "list"], ["apikey", "create", "--name", "x"], ["apikey", "revoke", "key_x"], ["worker"]],
)
def test_apikey_or_worker_without_a_database_says_so_and_creates_nothing(
    veil_env: Settings, command: list[str], worker_app: list[Settings]
) -> None:
    """GIVEN a data directory where `veil serve` never ran (VEIL_DATA_DIR unset or mistyped, say)
    WHEN any `veil apikey` command or a `veil worker` runs
    THEN it names the database it looked for and how to get one, exits 1, and leaves no file behind
    (a worker used to make an empty database and log "no such table" every few seconds)."""
    result = runner.invoke(app, command)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        _line(veil_env),
        f"error: no Veil database at sqlite:///{veil_env.data_dir / 'veil.db'}; run `veil serve` once to "
        "create it, or set VEIL_DATA_DIR (or VEIL_DATABASE_URL) to the installation's.",
    ]
    assert result.stdout == ""
    assert not veil_env.data_dir.exists()
    assert worker_app == [], "no worker started"


def test_apikey_says_which_installation_it_works_on(veil_env: Settings) -> None:
    migrate(veil_env.database_url)

    result = runner.invoke(app, ["apikey", "create", "--name", "ops"])

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == _line(veil_env)
    assert "data directory" not in result.stdout, "stdout holds only what scripts read"


def test_a_database_password_is_never_shown(monkeypatch: pytest.MonkeyPatch, veil_env: Settings) -> None:
    url = "postgresql://veil:s3cret-pass@127.0.0.1:1/veil"
    monkeypatch.setenv("VEIL_DATABASE_URL", url)
    get_settings.cache_clear()
    settings = get_settings()

    result = runner.invoke(app, ["apikey", "list"])

    assert installation_line(settings) == (
        f"data directory: {settings.data_dir}  database: postgresql://veil:***@127.0.0.1:1/veil"
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == installation_line(settings)
    assert "error: cannot open the database postgresql://veil:***@127.0.0.1:1/veil: " in result.stderr
    assert "s3cret-pass" not in result.output


def test_worker_says_which_installation_it_works_on(veil_env: Settings, worker_app: list[Settings]) -> None:
    migrate(veil_env.database_url)

    result = runner.invoke(app, ["worker"])

    assert result.exit_code == 0, result.output
    assert worker_app == [veil_env]
    assert result.stderr.splitlines() == [_line(veil_env)]
