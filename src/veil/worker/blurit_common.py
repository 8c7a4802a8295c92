"""What BlurIt-style tasks share whatever the protocol of their paths: the engine run on one local file,
the expiry check, and the result as the BlurIt API shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veil.core.database.models import utc_now
from veil.engine.anonymizer import Anonymizer
from veil.engine.report import Report
from veil.worker.context import WorkerContext
from veil.worker.lifecycle import Claim, TaskFailure, Ticker
from veil.worker.options import engine_request

__all__ = [
    "MEDIA_OUTPUTS",
    "anonymizer_for",
    "blurit_result",
    "check_not_expired",
    "process_file",
    "video_frames",
]

MEDIA_OUTPUTS = {"input_image": "output_image", "input_video": "output_video"}


def anonymizer_for(context: WorkerContext, claim: Claim) -> tuple[Anonymizer, bool]:
    request = engine_request(claim.operation, claim.parameters)
    return context.models.anonymizer(request), request.write_media


def process_file(
    anonymizer: Anonymizer, source: Path, media: Path | None, detections: Path | None, ticker: Ticker
) -> Report:
    """Writes the media and JSON outputs into staging."""
    for path in (media, detections):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    report = anonymizer.process_file(source, media, lambda done, total: ticker.progress(done / (total or 1)))
    ticker.check()
    if detections is not None:
        detections.write_text(report.to_json() + "\n", encoding="utf-8")
    return report


def check_not_expired(field: str, spec: dict[str, Any]) -> None:
    expires_at = spec.get("expires_at")
    if expires_at is None:
        return
    moment = datetime.fromisoformat(str(expires_at))
    if moment.tzinfo is None:  # the server stores aware times; read a bare one as UTC
        moment = moment.replace(tzinfo=UTC)
    if moment <= utc_now():
        raise TaskFailure("Input expired", f"{field} expired at {expires_at}; it is not used after that time")


def blurit_result(body: dict[str, Any], size: dict[str, int], nb_files: dict[str, int]) -> dict[str, Any]:
    """The request's input_*/output_* specs as given, with bytes and files processed per IMAGE and VIDEO."""
    echo = {name: spec for name, spec in body.items() if name.startswith(("input_", "output_"))}
    counts = {"IMAGE": 0, "VIDEO": 0}
    return {**echo, "size": {**counts, **size}, "nb_files": {**counts, **nb_files}}


def video_frames(report: Report) -> int:
    return (report.media.frame_count or 0) if report.media.type == "video" else 0
