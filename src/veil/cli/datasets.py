"""`veil dataset export`: several tasks' detections in one dataset, as a CVAT project's export
(`POST /v1/datasets/export`), followed with a progress bar like `veil task export`; in the zip each task's
items and images are named under a folder named by its id, so photos of the same name stay apart."""

from __future__ import annotations

from typing import Annotated

import typer

from veil.cli.client import DEFAULT_URL, ApiKeyOpt, Interval, UrlOpt, command_client
from veil.cli.task_requests import (
    FormatOpt,
    FrameStepOpt,
    ImagesOpt,
    OriginalOpt,
    OutputFile,
    follow_request,
    resolve_format,
)

__all__ = ["dataset_app"]

dataset_app = typer.Typer(
    help="Datasets of several tasks in annotation formats (COCO, YOLO, CVAT...).", no_args_is_help=True
)


@dataset_app.command("export")
def export(
    task_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="TASK...", help="Completed tasks of yours, each once (100 at most).", show_default=False
        ),
    ],
    format_name: FormatOpt,
    output: OutputFile,
    images: ImagesOpt = False,
    original: OriginalOpt = False,
    frame_step: FrameStepOpt = 1,
    interval: Interval = 0.5,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Export several tasks as one dataset in an annotation format (a zip); print its path.

    Each task's items, and with --images its photos or video frames, are named under a folder named by its
    id."""
    with command_client(url, api_key) as client:
        body = {
            "task_ids": task_ids,
            "format": resolve_format(client, format_name, task_ids, exporting=True),
            "save_images": images,
            "media": "original" if original else "anonymized",
            "frame_step": frame_step,
        }
        done = follow_request(client, client.start_request("/v1/datasets/export", {}, body=body), interval)
        typer.echo(str(client.download_to(str(done["result_id"]), output)))
