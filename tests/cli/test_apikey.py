"""`veil apikey create|list|revoke`, run on a fresh data dir as an operator would."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from typer.testing import CliRunner

from veil.cli.app import app
from veil.core.db import create_db_engine
from veil.core.keys import find_api_key, hash_key
from veil.core.models import ApiKey
from veil.core.settings import Settings

runner = CliRunner(env={"COLUMNS": "200"})
SECRET = re.compile(r"API key:\s+(veil_\S+)")
CALLBACK_SECRET = re.compile(r"callback secret:\s+([0-9a-f]{64})")


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


def test_list_shows_keys_and_counters_but_no_secret(veil_env: Settings) -> None:
    first = _create("--name", "alice")
    _create("--name", "ops", "--admin")

    result = runner.invoke(app, ["apikey", "list"])

    assert result.exit_code == 0, result.output
    alice, ops = _keys(veil_env)
    lines = {line.split("│")[2].strip(): line for line in result.stdout.splitlines() if "key_" in line}
    assert set(lines) == {"alice", "ops"}
    assert alice.id in lines["alice"] and alice.prefix in lines["alice"] and " no " in lines["alice"]
    assert ops.id in lines["ops"] and " yes " in lines["ops"]
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
    listing = runner.invoke(app, ["apikey", "list"]).stdout
    assert revoked.revoked_at.isoformat(timespec="seconds").replace("+00:00", "Z") in listing


def test_revoke_an_unknown_key_fails(veil_env: Settings) -> None:
    result = runner.invoke(app, ["apikey", "revoke", "key_doesnotexist"])

    assert result.exit_code == 1
    assert "no API key with id key_doesnotexist" in result.stderr
