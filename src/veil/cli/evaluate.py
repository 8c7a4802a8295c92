"""`veil eval`: Veil's detections scored against the user's own labels on photos and videos, with an HTML
report of what the defaults miss on their data (recall per label and box height, unmatched detections, a crop
of every miss)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from veil.engine.anonymizer import DEFAULT_DETECTORS, Anonymizer
from veil.engine.detectors.base import DetectorConfig
from veil.engine.errors import VeilError
from veil.engine.evaluation import CVAT_XML, Evaluation, EvaluationRun, evaluate, write_report

__all__ = ["eval_command"]

console = Console(stderr=True)

# The short names the issue and the help use; anything else goes to the registry, which lists its names.
# "cvat" takes either CVAT export (for video: tracks; for images: a box list per photo or frame) as the file
# holds it, so a person need not know which of the two their task was exported as.
FORMAT_ALIASES = {
    "coco": "COCO 1.0",
    "cvat": CVAT_XML,
    "cvat-images": "CVAT for images 1.1",
    "cvat-video": "CVAT for video 1.1",
    "mot": "MOT 1.1",
    "yolo": "Ultralytics YOLO Detection 1.0",
    "voc": "PASCAL VOC 1.1",
    "datumaro": "Datumaro 1.0",
}


def eval_command(
    labels: Annotated[
        Path,
        typer.Option(metavar="PATH", help="Your labels: a zip or file as CVAT exports them, or that folder."),
    ],
    format_name: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="coco|cvat|mot|yolo|voc",
            help="The labels' format; cvat reads CVAT for video or for images, as the file holds it.",
        ),
    ],
    images: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="The labelled photos and videos, named as the labels name them (relative path); needed by "
            "--run and for crops.",
        ),
    ] = None,
    detections: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="veil.detections/1 files as `veil detect MEDIA -o DIR` writes them."
        ),
    ] = None,
    run: Annotated[
        bool,
        typer.Option(
            "--run", help="Run the detectors over the photos and videos instead (videos as veil detect does)."
        ),
    ] = False,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="DIR", help="Where the report is written.")
    ] = Path("veil-eval"),
    detectors: Annotated[str, typer.Option(help="Detectors --run runs.")] = ",".join(DEFAULT_DETECTORS),
    device: Annotated[
        str, typer.Option(metavar="auto|cpu|cuda", help="Where --run's detectors run.")
    ] = "auto",
) -> None:
    """Score Veil's detections against your labels on photos and videos: recall per label and box height,
    unmatched detections, every missed box, and an HTML report with a crop of each miss. On a video, every
    frame with a labelled box is scored like a photo."""
    if (detections is None) == (not run):
        raise typer.BadParameter("give either --detections DIR or --run", param_hint="--detections / --run")
    if run and images is None:
        raise typer.BadParameter(
            "--run needs the labelled photos and videos: --images DIR", param_hint="--images"
        )
    try:
        result = _evaluate(labels, FORMAT_ALIASES.get(format_name.casefold(), format_name), images,
                           detections, _anonymizer(detectors, device) if run else None)  # fmt: skip
        about = {"labels": f"{labels} ({format_name})", "detections": str(detections or f"--run {detectors}")}
        page = write_report(result.evaluation, output, about, result.media, result.found)
    except VeilError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    _print_summary(result.evaluation)
    console.print(f"report: {page}", soft_wrap=True)


def _anonymizer(detectors: str, device: str) -> Anonymizer:
    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("use auto, cpu or cuda", param_hint="--device")
    names = [name.strip() for name in detectors.split(",") if name.strip()]
    return Anonymizer.load(names, DetectorConfig(device=device))  # type: ignore[arg-type]


def _evaluate(
    labels: Path,
    format_name: str,
    images: Path | None,
    detections: Path | None,
    anonymizer: Anonymizer | None,
) -> EvaluationRun:
    if anonymizer is None:
        return evaluate(labels, format_name, images=images, detections=detections)
    columns = (TextColumn("detecting"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("detect", total=None)
        return evaluate(
            labels,
            format_name,
            images=images,
            anonymizer=anonymizer,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def _print_summary(evaluation: Evaluation) -> None:
    table = Table(title=f"Recall on {evaluation.counted} (IoU >= 0.3)")
    buckets = [name for name, _, _ in evaluation.buckets]
    for column in ("label", "boxes", "found", "recall", *(f"{b} px" for b in buckets), "unmatched/image"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, tally in evaluation.tallies.items():
        recalls = [_percent(tally.recall(group)) for group in ("all", *buckets)]
        per_image = f"{tally.unmatched / max(tally.images, 1):.2f}"
        table.add_row(label, str(tally.boxes["all"]), str(tally.hits["all"]), *recalls, per_image)
    console.print(table)
    console.print(f"missed boxes: {len(evaluation.misses)}")
    if missing := evaluation.without_detections:
        console.print(f"[yellow]{len(missing)} files had no detections file (counted as nothing found)[/]")
    for label, count in sorted(evaluation.ignored.items()):
        console.print(f"[yellow]{count} {label} detections ignored: the labels have no {label} box[/]")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
