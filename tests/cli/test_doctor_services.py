"""`veil doctor --services`: each connection the settings name, and what is wrong with it in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.services import private_postgres, private_redis
from veil.cli.app import app
from veil.core.database.connection import migrate
from veil.core.settings import Settings, get_settings

runner = CliRunner(env={"COLUMNS": "400"})


def doctor(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    result = runner.invoke(app, ["doctor", "--services"])
    get_settings.cache_clear()
    return result.exit_code, result.output


def test_every_service_of_a_working_installation_is_ok(
    veil_env: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with private_postgres() as database_url, private_redis(tmp_path) as redis_server:
        migrate(database_url)
        veil_env.file_root_dir.mkdir(parents=True)
        code, output = doctor(
            monkeypatch,
            VEIL_DATABASE_URL=database_url,
            VEIL_BROKER_URL=redis_server.url,
            VEIL_RATE_LIMIT_STORAGE=redis_server.url.replace("/0", "/1"),
        )

    assert code == 0, output
    assert output.count(" ok ") == 5
    assert "every service answers" in output


def test_what_is_wrong_is_said_for_each_service(veil_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = doctor(
        monkeypatch,
        VEIL_DATABASE_URL="postgresql+psycopg://veil:s3cret-word@127.0.0.1:1/veil",
        VEIL_BROKER_URL="amqp://guest:guest@127.0.0.1:1//",
        VEIL_RATE_LIMIT_STORAGE="redis://127.0.0.1:1",
    )

    assert code == 1
    lines = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") == 4}
    assert "cannot connect" in lines["database"] and "Connection refused" in lines["database"]
    assert "cannot connect to the broker" in lines["broker"]
    assert "does not exist or is no folder" in lines["file root"]
    assert "does not answer" in lines["rate limits"]
    assert " ok " in lines["storage"]
    assert "s3cret-word" not in output, "passwords are masked"
