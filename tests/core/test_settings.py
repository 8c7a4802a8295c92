"""Settings: defaults under one data directory, environment variables, and an optional TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from veil.core.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VEIL_CONFIG", "VEIL_DATA_DIR", "VEIL_PORT", "VEIL_RATE_LIMIT", "VEIL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_every_path_defaults_to_a_place_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    assert settings.database_url == f"sqlite:///{tmp_path / 'veil.db'}"
    assert settings.broker_url == f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    assert settings.storage_dir == tmp_path / "storage"
    assert settings.file_root_dir == tmp_path / "files"


def test_environment_variables_win_over_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "veil.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-file"}"\nport = 9000\nrate_limit = "5/second"\n')
    monkeypatch.setenv("VEIL_CONFIG", str(config))
    monkeypatch.setenv("VEIL_PORT", "9100")

    settings = Settings()

    assert settings.port == 9100
    assert settings.rate_limit == "5/second"
    assert settings.data_dir == tmp_path / "from-file"


def test_a_bad_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIL_PORT", "99999")

    with pytest.raises(ValidationError, match="port"):
        Settings()
