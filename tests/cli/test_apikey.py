"""`veil apikey create|list|revoke`, run on a fresh data dir as an operator would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from veil.cli.app import app
from veil.core.database.connection import create_db_engine, migrate
from veil.core.database.models import ApiKey
from veil.core.services.keys import find_api_key, hash_key
from veil.core.settings import Settings

runner = CliRunner(env={"COLUMNS": "200"})
SECRET = re.compile(r"API key:\s+(veil_\S+)")
CALLBACK_SECRET = re.compile(r"callback secret:\s+([0-9a-f]{64})")


@pytest.fixture(autouse=True)
def installation(veil_env: Settings) -> Settings:
    """An installation as `veil serve` leaves it: its database exists (`veil apikey` makes none)."""
    migrate(veil_env.database_url)
    return veil_env


def _keys(settings: Settings) -> list[ApiKey]:
    engine = create_db_engine(settings.database_url)
    try:
        with sessionmaker(engine)() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))
    finally:
        engine.dispose()


def _find(settings: Settings, secret: str) -> ApiKey | None:
    engine = create_db_engine(settings.database_url)
    try:
        with sessionmaker(engine)() as session:
            return find_api_key(session, secret)
    finally:
        engine.dispose()


def _secret(output: str) -> str:
    match = SECRET.search(output)
    assert match is not None, output
    return match.group(1)


def _create(*args: str) -> str:
    result = runner.invoke(app, ["apikey", "create", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_create_prints_the_key_once_and_stores_only_its_hash(veil_env: Settings) -> None:
    output = _create("--name", "ci robot")

    secret, callback_match = _secret(output), CALLBACK_SECRET.search(output)
    assert "only its hash is stored" in output
    [key] = _keys(veil_env)
    assert (key.name, key.is_admin, key.key_hash) == ("ci robot", False, hash_key(secret))
    assert callback_match is not None and key.callback_secret == callback_match.group(1)
    assert secret not in {key.id, key.name, key.key_hash, key.prefix}
    found = _find(veil_env, secret)
    assert found is not None and found.id == key.id


def test_create_admin(veil_env: Settings) -> None:
    _create("--name", "root", "--admin")

    [key] = _keys(veil_env)
    assert key.is_admin


def test_create_with_a_file_root(veil_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dashcam = tmp_path / "dashcam"
    dashcam.mkdir()
    monkeypatch.chdir(tmp_path)

    output = _create("--name", "dashcam", "--file-root", "dashcam")

    [key] = _keys(veil_env)
    assert key.file_root == str(dashcam)
    assert f"file root:       {dashcam}" in output


def test_create_tells_the_default_file_root(veil_env: Settings) -> None:
    plain, admin = _create("--name", "alice"), _create("--name", "root", "--admin")

    alice, _ = _keys(veil_env)
    assert alice.file_root is None
    assert f"file root:       {veil_env.file_root_dir / alice.id}  " in plain
    assert f"file root:       {veil_env.file_root_dir}  " in admin


@pytest.mark.parametrize(
    ("given", "says"),
    [("missing", "is not a directory on the server"), ("/", "holds the data directory")],
)
def test_create_refuses_an_unusable_file_root(
    veil_env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, says: str
) -> None:
    monkeypatch.chdir(tmp_path)

    result = runner.invoke(app, ["apikey", "create", "--name", "x", "--file-root", given])

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: --file-root {given}: ")
    assert says in result.stderr
    assert "Created" not in result.output


def test_list_shows_keys_and_counters_but_no_secret(veil_env: Settings) -> None:
    first = _create("--name", "alice")
    _create("--name", "ops", "--admin")

    result = runner.invoke(app, ["apikey", "list"])

    assert result.exit_code == 0, result.output
    alice, ops = _keys(veil_env)
    lines = result.stdout.splitlines()
    rows = {line.split()[1]: (line, lines[number + 1]) for number, line in enumerate(lines) if "key_" in line}
    assert set(rows) == {"alice", "ops"}
    assert rows["alice"][0].split()[0] == alice.id and rows["alice"][1].split()[0] == f"{alice.prefix}…"
    assert "(admin)" not in rows["alice"][1]
    assert rows["ops"][0].split()[0] == ops.id and rows["ops"][1].split()[:2] == [f"{ops.prefix}…", "(admin)"]
    assert _secret(first) not in result.stdout
    assert alice.callback_secret not in result.stdout and alice.key_hash not in result.stdout


def test_revoke_refuses_the_key_from_then_on(veil_env: Settings) -> None:
    output = _create("--name", "leaked")
    [key] = _keys(veil_env)

    result = runner.invoke(app, ["apikey", "revoke", key.id])

    assert result.exit_code == 0, result.output
    [revoked] = _keys(veil_env)
    assert revoked.revoked_at is not None
    assert _find(veil_env, _secret(output)) is None
    listing = runner.invoke(app, ["apikey", "list"]).stdout.splitlines()
    second_line = listing[next(number for number, line in enumerate(listing) if key.id in line) + 1]
    assert second_line.split()[-1] == revoked.revoked_at.date().isoformat()


def test_revoke_an_unknown_key_fails(veil_env: Settings) -> None:
    result = runner.invoke(app, ["apikey", "revoke", "key_doesnotexist"])

    assert result.exit_code == 1
    assert "no API key with id key_doesnotexist" in result.stderr


def test_list_fits_80_columns_without_cutting_ids_or_prefixes(veil_env: Settings) -> None:
    """GIVEN keys with a long name, a revoked one and large usage counters
    WHEN `veil apikey list` prints in an 80-column terminal
    THEN no line is wider, every id and prefix is whole on its line, and byte counts read as sizes."""
    _create("--name", "the newsroom's photo desk, second floor, night shift")
    _create("--name", "ops", "--admin")
    first, second = _keys(veil_env)
    assert runner.invoke(app, ["apikey", "revoke", second.id]).exit_code == 0
    engine = create_db_engine(veil_env.database_url)
    with engine.begin() as connection:
        counters = {
            "files_processed": 123_456,
            "bytes_processed": 12_345_678_901,
            "frames_processed": 9_876_543,
        }
        connection.execute(update(ApiKey).where(ApiKey.id == first.id).values(**counters))
    engine.dispose()

    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["apikey", "list"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    words = [line.split() for line in lines]
    for key in (first, second):
        assert any(key.id in line for line in words) and any(f"{key.prefix}…" in line for line in words)
    assert "12.3 GB" in result.stdout and "123456" in result.stdout and "9876543" in result.stdout
