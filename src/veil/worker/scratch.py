"""A private folder on the worker's own disk for one attempt of a task: inputs downloaded from storage,
links, and outputs until they are complete. It goes when the attempt ends, whatever the end; what an
attempt killed outright left goes when the task's next attempt starts."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from veil.core.settings import Settings
from veil.worker.lifecycle import Claim

__all__ = ["attempt_folder"]


@contextmanager
def attempt_folder(settings: Settings, claim: Claim) -> Iterator[Path]:
    """`<staging dir>/<task id>-<attempt>`, made 0700 and removed after the block; earlier attempts'
    folders of the task are removed first."""
    base = settings.staging_dir
    for left in base.glob(f"{claim.task_id}-*"):
        shutil.rmtree(left, ignore_errors=True)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = base / f"{claim.task_id}-{claim.attempt}"
    folder.mkdir(mode=0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
