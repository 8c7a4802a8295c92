"""One settings object, read from `VEIL_*` environment variables and an optional TOML file.

The file is named by `VEIL_CONFIG`; environment variables win over it. Every path defaults to a place
under `data_dir`, so one variable moves a whole installation.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Configuration of the task server and its workers.

    Attributes:
        data_dir: where the database, the embedded broker and stored files live by default.
        database_url: SQLAlchemy URL; default a SQLite file in `data_dir`.
        broker_url: Celery broker URL; default kombu's SQLAlchemy transport on a SQLite file in `data_dir`.
        storage_root: uploaded and generated files.
        file_root: the root that BlurIt-style `protocol: "file"` paths are relative to.
        host, port: where `veil serve` listens.
        workers: worker processes `veil serve` starts; 0 starts none (run `veil worker` elsewhere).
        max_upload_bytes: largest accepted upload.
        max_json_bytes: largest request body that is not a file upload (JSON); larger ones answer 413.
        metrics_token: a bearer token that may read `/metrics` (for Prometheus); admin keys always may.
        rate_limit: requests per key, in the `limits` notation (e.g. "600/minute").
        rate_limit_storage: where the counters live (`limits` storage URI; redis://... for several servers).
        file_lifespan_s: how long uploaded and generated files are kept when no lifespan is given.
        cleanup_interval_s: how often expired files are deleted.
        allow_private_callbacks: let callback URLs reach loopback and private addresses.
        callback_timeout_s, callback_retries: per attempt, and how many attempts after the first.
        task_time_limit_s: a task running longer than this is stopped and failed.
        stale_task_s: a started task whose worker sent no heartbeat for this long is queued again.
        storage_url: `s3://bucket/prefix` to keep files in S3-compatible object storage; empty keeps
            them on local disk under `storage_root`.
        s3_endpoint_url: the S3 service (e.g. http://seaweedfs:8333); empty for AWS itself.
        s3_region, s3_access_key_id, s3_secret_access_key: for S3; empty ones are taken from the
            standard AWS_* environment variables.
        s3_files_url: `s3://bucket/prefix` below which BlurIt-style `protocol: "s3"` paths live; each key
            reaches only `<prefix>/<key id>/` (admin keys the whole prefix). Empty refuses that protocol.
        lost_message_s: a queued task (or a callback) whose message the broker no longer holds, as a
            restarted Redis loses them, is sent again once it has waited this long.
        flower_basic_auth: `user:password` (several separated by commas) that `veil flower` asks for;
            needed to listen on anything but loopback.
        flower_url: where people reach Flower; the manager links to it for admin keys.
        split_min_s: a video at least this long (seconds) is cut into segments that several workers
            process at once, then joined; 0 never cuts.
        segment_min_s: the shortest segment (seconds); segments start at key frames, so most are longer.
        upload_lock_s: how long a resumable upload stays locked to the request sending its bytes when
            the API process running that request died; the client's next PATCH answers 409 until then.
        scratch_max_age_s: a file left this long (seconds, by modification time) in the scratch folder
            of the host running the periodic jobs is deleted; only a process killed outright leaves one.
    """

    model_config = SettingsConfigDict(env_prefix="VEIL_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    storage_root: Path | None = None
    file_root: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=0)
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_json_bytes: int = Field(default=1024**2, gt=0)
    metrics_token: SecretStr | None = None
    rate_limit: str = "600/minute"
    rate_limit_storage: str = "memory://"
    file_lifespan_s: int = Field(default=7 * 24 * 3600, gt=0)
    cleanup_interval_s: float = Field(default=60.0, gt=0)
    allow_private_callbacks: bool = False
    callback_timeout_s: float = Field(default=10.0, gt=0)
    callback_retries: int = Field(default=5, ge=0)
    task_time_limit_s: int = Field(default=6 * 3600, gt=0)
    stale_task_s: float = Field(default=60.0, gt=0)
    storage_url: str = Field(default="", pattern=r"^(s3://[^/?#]+(/[^?#]*)?)?$")
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr | None = None
    s3_files_url: str = Field(default="", pattern=r"^(s3://[^/?#]+(/[^?#]*)?)?$")
    lost_message_s: float = Field(default=300.0, gt=0)
    flower_basic_auth: SecretStr | None = None
    flower_url: str | None = None
    # One long video over several workers (veil.worker.segments).
    split_min_s: float = Field(default=120.0, ge=0)
    segment_min_s: float = Field(default=30.0, gt=0)
    # Left by an API process or worker killed outright (issue 10, nothing lost).
    upload_lock_s: float = Field(default=30.0, gt=0)
    scratch_max_age_s: float = Field(default=24 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'veil.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.db'}"
        self.storage_root = (self.storage_root or self.data_dir / "storage").expanduser().resolve()
        self.file_root = (self.file_root or self.data_dir / "files").expanduser().resolve()
        return self

    @property
    def storage_dir(self) -> Path:
        assert self.storage_root is not None  # filled by the validator
        return self.storage_root

    @property
    def staging_dir(self) -> Path:
        """Where workers make BlurIt-style outputs before moving them below a key's root: one folder per
        attempt, `<task id>-<attempt>`."""
        return self.data_dir / "staging"

    @property
    def scratch_dir(self) -> Path:
        """Where files on their way to or from S3 storage wait on this machine (removed once moved)."""
        return self.data_dir / "scratch"

    @property
    def file_root_dir(self) -> Path:
        assert self.file_root is not None  # filled by the validator
        return self.file_root

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("VEIL_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once (tests call `get_settings.cache_clear()`)."""
    return Settings()
