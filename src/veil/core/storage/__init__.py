"""Where file bytes live: a folder on local disk (the default) or an S3 bucket (`VEIL_STORAGE_URL`), behind
one interface (`Storage`, in `base`); `open_storage` picks the backend from the settings."""

from __future__ import annotations

from veil.core.settings import Settings
from veil.core.storage.base import Storage, StorageFullError, StorageUnavailableError, UploadTooLargeError
from veil.core.storage.local import LocalStorage
from veil.core.storage.s3 import S3Location, S3Storage, parse_s3_url

__all__ = [
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StorageFullError",
    "StorageUnavailableError",
    "UploadTooLargeError",
    "open_storage",
    "s3_storage",
]


def open_storage(settings: Settings) -> Storage:
    """The storage the settings name: `storage_url` (s3://bucket/prefix) with the `s3_*` settings, or local
    disk under `storage_root` when it is empty."""
    if not settings.storage_url:
        return LocalStorage(settings.storage_dir)
    return s3_storage(settings, parse_s3_url(settings.storage_url))


def s3_storage(settings: Settings, location: S3Location) -> S3Storage:
    """`location` reached with the `s3_*` settings, staging below `settings.scratch_dir`."""
    secret = settings.s3_secret_access_key
    return S3Storage(
        location,
        scratch=settings.scratch_dir,
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region or None,
        access_key_id=settings.s3_access_key_id or None,
        secret_access_key=secret.get_secret_value() if secret else None,
    )
