"""Progress bars and the end-of-run summary, drawn with Rich on stderr."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from veil.engine.batch import FileJob, FileOutcome

__all__ = ["BatchProgress", "FileBar", "human_bytes", "print_summary"]


class BatchProgress:
    """One overall bar, plus one bar per file in flight (frames for videos)."""

    def __init__(self, console: Console, total_files: int) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._overall = self._progress.add_task("all files", total=total_files)
        self._lock = threading.Lock()

    @contextmanager
    def running(self) -> Iterator[BatchProgress]:
        with self._progress:
            yield self

    def file_bar(self, job: FileJob) -> FileBar:
        """A bar for one file, to be closed when the file is done."""
        with self._lock:
            task = self._progress.add_task(f"  {job.relative}", total=None)
        return FileBar(self._progress, task)

    def file_done(self, outcome: FileOutcome) -> None:
        self._progress.advance(self._overall)
        if outcome.status == "failed":
            line = f"[red]failed[/red] {outcome.job.source}: {outcome.error}"
            self._progress.console.print(line, soft_wrap=True)


class FileBar:
    """Progress of one file: call it with (frames done, frames in total or None)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, done: int, total: int | None) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        self._progress.remove_task(self._task)


def human_bytes(count: int) -> str:
    """A size in decimal units, as file managers show it: "512 B", "1.2 kB", "3.4 GB"."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _counted(counts: dict[str, int], noun: str) -> str:
    """Counts per label as words: 2 faces, 1 plate; with noun " track": 1 face track, 3 plate tracks."""
    parts = [f"{count} {label}{noun}{'' if count == 1 else 's'}" for label, count in counts.items()]
    return ", ".join(parts) or "nothing"


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """Prints files and bytes per media type, detections per label, then skipped and failed files."""
    table = Table(title="Veil summary", show_header=True)
    table.add_column("")
    table.add_column("IMAGE", justify="right")
    table.add_column("VIDEO", justify="right")
    table.add_row("files", str(summary["nb_files"]["IMAGE"]), str(summary["nb_files"]["VIDEO"]))
    table.add_row("size", human_bytes(summary["size"]["IMAGE"]), human_bytes(summary["size"]["VIDEO"]))
    console.print(table)
    photos, videos = summary["detections"]["IMAGE"], summary["detections"]["VIDEO"]
    if summary["nb_files"]["IMAGE"]:
        console.print(f"found in photos: {_counted(photos, '')}")
    if summary["nb_files"]["VIDEO"]:
        # A face seen in 300 frames is one track, not 300 boxes; saying "tracks" keeps the numbers honest.
        console.print(f"found in videos: {_counted(videos, ' track')} (each followed across frames)")
    if summary["already_done"]:
        console.print(f"already done (skipped): {summary['already_done']}")
    for item in summary["skipped"]:
        console.print(f"[yellow]skipped[/yellow] {item['path']}: {item['reason']}", soft_wrap=True)
    for item in summary["failures"]:
        console.print(f"[red]failed[/red] {item['path']}: {item['reason']}", soft_wrap=True)
    console.print(f"failures: {len(summary['failures'])}")
