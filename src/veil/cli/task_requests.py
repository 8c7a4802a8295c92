"""`veil task export|import-annotations|backup|restore`: the server's background requests, each followed
with a progress bar until it finished (exit status 0) or failed (its message, exit status 1).

A format is named as `GET /v1/formats` names it ("COCO 1.0") or by the start of a word of that name, any
case ("coco", "yolo", "voc"); when several formats fit ("cvat"), the one made for the tasks' media kinds is
taken (CVAT for video for a video, CVAT for images for a photo, or for photos and videos together).

A backup or annotations file is sent by a resumable upload (`VeilClient.upload_resumable`), in chunks that
go on from the server's offset after a dropped connection: a backup may be several GB.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TransferSpeedColumn,
)

from veil.cli.client import (
    DEFAULT_URL,
    ApiKeyOpt,
    CommandError,
    Interval,
    UrlOpt,
    VeilClient,
    command_client,
    console,
)

__all__ = [
    "FormatOpt",
    "FrameStepOpt",
    "ImagesOpt",
    "OriginalOpt",
    "OutputFile",
    "add_request_commands",
    "follow_request",
    "resolve_format",
]

_ENDED = ("finished", "failed")

TaskId = Annotated[str, typer.Argument(metavar="TASK", help="The task's id.")]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", metavar="NAME", help='A format, e.g. "coco", "cvat", "yolo".')
]
OutputFile = Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="Where to write the zip.")]
ImagesOpt = Annotated[bool, typer.Option("--images", help="Include the photos or video frames.")]
OriginalOpt = Annotated[
    bool, typer.Option("--original", help="Images from the original, not the anonymized output.")
]
FrameStepOpt = Annotated[int, typer.Option(min=1, metavar="N", help="Videos: every n-th frame.")]


def add_request_commands(app: typer.Typer) -> None:
    """Adds the commands to `veil task`."""
    app.command("export")(export)
    app.command("import-annotations")(import_annotations)
    app.command("backup")(backup)
    app.command("restore")(restore)


def export(
    task_id: TaskId,
    format_name: FormatOpt,
    output: OutputFile,
    images: ImagesOpt = False,
    original: OriginalOpt = False,
    frame_step: FrameStepOpt = 1,
    interval: Interval = 0.5,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Export a task's detections in an annotation format (a zip), with its images if asked."""
    with command_client(url, api_key) as client:
        params: dict[str, Any] = {"format": resolve_format(client, format_name, [task_id], exporting=True)}
        if images:
            params.update(save_images="true", media="original" if original else "anonymized")
        params["frame_step"] = frame_step
        rq_id = client.start_request(f"/v1/tasks/{task_id}/dataset/export", params)
        done = follow_request(client, rq_id, interval)
        typer.echo(str(client.download_to(str(done["result_id"]), output)))


def import_annotations(
    task_id: TaskId,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="FILE", help="Annotations.")],
    format_name: FormatOpt,
    render: Annotated[
        bool, typer.Option("--render", help="Then obscure these boxes on the original.")
    ] = False,
    interval: Interval = 0.5,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Import corrected annotations of a task; print the stored document's file id (and the render task's)."""
    with command_client(url, api_key) as client:
        params = {"format": resolve_format(client, format_name, [task_id], exporting=False)}
        if render:
            params["render"] = "true"
        done = follow_request(
            client, _start_with_file(client, f"/v1/tasks/{task_id}/annotations", params, file), interval
        )
        typer.echo(str(done["result_id"]))
        if done.get("render_task_id"):
            typer.echo(str(done["render_task_id"]))


def backup(
    task_id: TaskId,
    output: OutputFile,
    interval: Interval = 0.5,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Back up a finished task to a zip (its files and detections), to restore here or on another server."""
    with command_client(url, api_key) as client:
        done = follow_request(
            client, client.start_request(f"/v1/tasks/{task_id}/backup/export", {}), interval
        )
        typer.echo(str(client.download_to(str(done["result_id"]), output)))


def restore(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, metavar="FILE", help="A backup zip.")],
    interval: Interval = 0.5,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Restore a backup as a new task of yours; print its id."""
    with command_client(url, api_key) as client:
        done = follow_request(client, _start_with_file(client, "/v1/tasks/backup", {}, file), interval)
        typer.echo(str(done["result_id"]))


def _start_with_file(client: VeilClient, path: str, params: dict[str, str], file: Path) -> str:
    """Starts the request at `path` reading `file`, uploaded first with a bar of the bytes sent; its id."""
    columns = (TextColumn(f"uploading {file.name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    # Off a terminal (a script's log) the bar would only leave a blank line behind.
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        bar = progress.add_task("upload", total=None)
        return client.start_request(
            path,
            params,
            upload=file,
            upload_progress=lambda held, size: progress.update(bar, completed=held, total=size),
        )


def follow_request(client: VeilClient, request_id: str, interval: float) -> dict[str, Any]:
    """Polls the request until it ends, with a progress bar; the finished request.

    Raises:
        CommandError: it failed (its message).
    """
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=console)
    with progress:
        request = client.get_request(request_id)
        bar = progress.add_task(str(request["operation"]["type"]), total=1.0)
        while True:
            progress.update(bar, completed=float(request["progress"]))
            if request["status"] in _ENDED:
                break
            time.sleep(interval)
            request = client.get_request(request_id)
    if request["status"] == "failed":
        raise CommandError(f"request {request_id} failed: {request['message']}")
    return request


def resolve_format(client: VeilClient, given: str, task_ids: Sequence[str], *, exporting: bool) -> str:
    """The server's name of the format `given` names for the tasks `task_ids` (see the module docstring).

    Raises:
        CommandError: no format, or several that the tasks' media kinds do not tell apart.
    """
    usable = [f for f in client.formats() if f["can_export" if exporting else "can_import"]]
    exact = [f["name"] for f in usable if f["name"].casefold() == given.casefold()]
    if exact:
        return str(exact[0])
    candidates = [f for f in usable if _names(given, f["name"])]
    if len(candidates) > 1:
        kinds = {_media_kind(client, task_id) for task_id in task_ids}
        fitting = [f for f in candidates if kinds <= set(f["media"])]
        fewest = min((len(f["media"]) for f in fitting), default=0)
        candidates = [f for f in fitting if len(f["media"]) == fewest]
    if len(candidates) != 1:
        names = ", ".join(f["name"] for f in (candidates or usable))
        raise CommandError(f"format {given!r} names {len(candidates)} formats; give one of: {names}")
    return str(candidates[0]["name"])


def _names(given: str, name: str) -> bool:
    """Whether `given` starts one of the words of the format name `name`, any case: "yolo" names
    "Ultralytics YOLO Detection 1.0", "voc" names "PASCAL VOC 1.1"."""
    words = name.casefold()
    return f" {words}".find(f" {given.strip().casefold()}") >= 0


def _media_kind(client: VeilClient, task_id: str) -> str:
    """ "image" or "video": what the task's detections were made on, told by its generated media."""
    task = client.get_task(task_id)
    generated = (task.get("result") or {}).get("generated_files", [])
    types = [str(f["type"]) for f in generated]
    return "video" if any(t.startswith("video/") for t in types) else "image"
