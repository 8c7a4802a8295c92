"""`veil task ...`: submit photos and videos to a Veil server, follow the tasks and fetch the results.

Talks HTTP to `VEIL_URL` (default http://127.0.0.1:8000) with the key in `VEIL_API_KEY`; `--url` and
`--api-key` override them. An error the API answers (RFC 9457 problem) is printed as one line, such as
`error 404: Task with id task_x not found.`, and the command exits with status 1; usage errors exit with 2.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from veil.core.database.models import FINAL_STATUSES
from veil.engine.media.kinds import media_kind

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "CommandError",
    "Unreachable",
    "VeilClient",
    "command_client",
    "parse_parameters",
    "task_app",
]

DEFAULT_URL = "http://127.0.0.1:8000"
# A refused upload says something about that file only; the other files are still sent.
FILE_REFUSED_STATUSES = frozenset({413, 415, 422})
RATE_LIMIT_RETRIES = 5
MAX_RETRY_AFTER_S = 60.0
TIMEOUT = httpx.Timeout(30.0, connect=10.0, read=300.0)
RESUMABLE_CHUNK_BYTES = 8 * 1024 * 1024
"""Bytes per PATCH of a resumable upload: what a dropped connection may cost again, and what is held in
memory at once."""
RESUME_DELAYS_S = (1.0, 2.0, 4.0)
"""The waits before each try to go on with a resumable upload after a failed chunk; one failure more and
the command stops."""
_TUS = {"Tus-Resumable": "1.0.0"}

UploadProgress = Callable[[int, int], None]
"""Called as progress(bytes the server holds, file size) as a resumable upload goes on."""

console = Console(stderr=True)
task_app = typer.Typer(
    help="Submit photos and videos to a Veil server, follow the tasks and download the results.",
    no_args_is_help=True,
)


class CommandError(Exception):
    """Something the user should read as one line; the command then exits with status 1."""


class ApiError(CommandError):
    """The server answered with an error (an RFC 9457 problem)."""

    def __init__(self, status: int, detail: str, errors: Mapping[str, list[str]] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.errors = dict(errors or {})
        lines = [f"error {status}: {detail}"]
        # A field error that only repeats the detail (as for a refused upload) adds nothing.
        lines += [
            f"  {field}: {'; '.join(messages)}"
            for field, messages in self.errors.items()
            if messages != [detail]
        ]
        super().__init__("\n".join(lines))


class Unreachable(CommandError):
    """No answer from the server at all."""


def _problem(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ApiError(response.status_code, response.reason_phrase or "unexpected answer")
    detail = body.get("detail") or body.get("message") or body.get("title") or response.reason_phrase
    errors = body.get("errors") if isinstance(body.get("errors"), dict) else None
    return ApiError(response.status_code, str(detail), errors)


def _worth_resuming(error: CommandError) -> bool:
    """A dropped connection, a server error, or an offset the server does not expect: ask the offset and
    go on. Any other answer (a refused upload, a bad key) stays as it is."""
    return not isinstance(error, ApiError) or error.status >= 500 or error.status == 409


def _retry_after_s(response: httpx.Response) -> float:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(response.headers.get("retry-after", "1"))))
    except ValueError:
        return 1.0


class VeilClient:
    """The Veil task API (`/v1/files`, `/v1/tasks`, `/v1/requests`), answering dicts as the API shapes them.

    Raises CommandError subclasses: ApiError for problems, Unreachable when the server does not answer.
    A 429 is retried after its Retry-After, a few times, so big batches pace themselves.
    """

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, headers={"x-api-key": api_key}, timeout=TIMEOUT)

    def __enter__(self) -> VeilClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.close()

    @contextmanager
    def _connection(self) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach Veil at {self.url}: {exc or type(exc).__name__}") from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._connection():
            for attempt in range(RATE_LIMIT_RETRIES + 1):
                response = self._http.request(method, path, **kwargs)
                if response.status_code != 429 or attempt == RATE_LIMIT_RETRIES:
                    break
                time.sleep(_retry_after_s(response))
        if response.is_error:
            raise _problem(response)
        return response

    def upload(self, path: Path) -> dict[str, Any]:
        """Uploads a file (streamed from disk) and returns the file object."""
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as stream:
            response = self._request("POST", "/v1/files", files={"file": (path.name, stream, media_type)})
        return dict(response.json())

    def create_task(
        self, *, operation: str, parameters: dict[str, Any], input_id: str, callback_url: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"operation": operation, "parameters": parameters, "input": input_id}
        if callback_url is not None:
            body["callback_url"] = callback_url
        return dict(self._request("POST", "/v1/tasks", json=body).json())

    def get_task(self, task_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/tasks/{task_id}").json())

    def list_tasks(self, query: Mapping[str, str | int]) -> dict[str, Any]:
        return dict(self._request("GET", "/v1/tasks", params=dict(query)).json())

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/v1/tasks/{task_id}").json())

    def start_request(
        self,
        path: str,
        params: Mapping[str, Any],
        upload: Path | None = None,
        body: Mapping[str, Any] | None = None,
        upload_progress: UploadProgress | None = None,
    ) -> str:
        """POSTs to a route that starts a background request, with a JSON `body` if given, and its input
        `upload` sent before as a resumable upload (`upload=<id>`, followed by `upload_progress`); returns
        the request's id."""
        query = dict(params)
        if upload is not None:
            query["upload"] = self.upload_resumable(upload, purpose="request", progress=upload_progress)
        return str(self._request("POST", path, params=query, json=body).json()["rq_id"])

    def upload_resumable(self, path: Path, purpose: str, progress: UploadProgress | None = None) -> str:
        """Sends a file by a TUS resumable upload with the metadata `purpose` and its name, in chunks of
        RESUMABLE_CHUNK_BYTES; returns the upload's id. A backup may be several GB: after a dropped
        connection, a 5xx or a 409 (offset) answer, the server's offset (HEAD) says where to go on, a try
        after each of RESUME_DELAYS_S. `progress(bytes the server holds, size)` follows it.

        Raises:
            CommandError: the upload stopped (how far it got, and the last failure), or was refused.
        """
        size = path.stat().st_size
        fields = {"filename": path.name, "purpose": purpose}
        metadata = ",".join(
            f"{key} {base64.b64encode(text.encode()).decode()}" for key, text in fields.items()
        )
        created = self._request(
            "POST", "/v1/uploads", headers={**_TUS, "Upload-Length": str(size), "Upload-Metadata": metadata}
        )
        upload_id = created.headers["location"].rsplit("/", 1)[-1]
        offset: int | None = 0  # None after a failure, until the server says how far it got
        sent, failures = 0, 0
        with path.open("rb") as stream:
            while offset is None or offset < size:
                try:
                    if offset is None:
                        offset = self._upload_offset(upload_id)
                    else:
                        offset, failures = self._append_chunk(upload_id, stream, offset), 0
                    sent = offset
                    if progress is not None:
                        progress(sent, size)
                except CommandError as exc:
                    if not _worth_resuming(exc):
                        raise
                    if failures == len(RESUME_DELAYS_S):
                        raise CommandError(
                            f"upload of {path.name} stopped after {failures} tries to go on "
                            f"({sent} of {size} bytes sent): {exc}"
                        ) from exc
                    time.sleep(RESUME_DELAYS_S[failures])
                    offset, failures = None, failures + 1
        return upload_id

    def _upload_offset(self, upload_id: str) -> int:
        response = self._request("HEAD", f"/v1/uploads/{upload_id}", headers=_TUS)
        return int(response.headers["upload-offset"])

    def _append_chunk(self, upload_id: str, stream: BinaryIO, offset: int) -> int:
        """PATCHes the next chunk of `stream`, from `offset`; the server's new offset."""
        stream.seek(offset)
        headers = {**_TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        chunk = stream.read(RESUMABLE_CHUNK_BYTES)
        response = self._request("PATCH", f"/v1/uploads/{upload_id}", content=chunk, headers=headers)
        return int(response.headers["upload-offset"])

    def get_request(self, request_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/requests/{request_id}").json())

    def formats(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/formats").json()["results"])

    def download(self, file: Mapping[str, Any], directory: Path) -> Path:
        """Streams a file's content to `directory` under its name (a temporary name until complete)."""
        # Only the last part of the name counts: a server cannot make us write outside `directory`.
        return self.download_to(
            str(file["id"]), directory / (Path(str(file["name"])).name or str(file["id"]))
        )

    def download_to(self, file_id: str, target: Path) -> Path:
        """Streams file `file_id`'s content to `target` (a temporary name until complete)."""
        partial = target.with_name(f".{target.name}.partial")
        try:
            with self._connection(), self._http.stream("GET", f"/v1/files/{file_id}/content") as response:
                if response.is_error:
                    response.read()
                    raise _problem(response)
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target


def parse_parameters(specs: list[str]) -> dict[str, Any]:
    """`key=value` pairs as a parameters object: dotted keys nest, values are JSON when they parse as JSON
    and strings otherwise (`threshold=0.4`, `detectors=["face"]`, `styles.face.method=pixelate`)."""
    parameters: dict[str, Any] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise typer.BadParameter(f"{spec!r}: use KEY=VALUE, e.g. threshold=0.4", param_hint="--param")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = parameters
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise typer.BadParameter(f"{spec!r}: {part} is already a value", param_hint="--param")
            node = child
        node[parts[-1]] = value
    return parameters


UrlOpt = Annotated[str, typer.Option("--url", envvar="VEIL_URL", help="The Veil server.")]
ApiKeyOpt = Annotated[
    str, typer.Option("--api-key", envvar="VEIL_API_KEY", help="Your API key.", show_default=False)
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Interval = Annotated[
    float, typer.Option("--interval", metavar="SECONDS", min=0.05, help="Seconds between polls.")
]
TaskIds = Annotated[list[str], typer.Argument(metavar="ID...", help="Task ids.", show_default=False)]


@contextmanager
def command_client(url: str, api_key: str) -> Iterator[VeilClient]:
    """A client whose errors end the command with their one-line message and exit status 1."""
    if not api_key:
        raise typer.BadParameter("set VEIL_API_KEY or pass --api-key", param_hint="--api-key")
    try:
        with VeilClient(url, api_key) as client:
            yield client
    except CommandError as exc:
        console.print(str(exc), style="red", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1) from exc


def _collect(inputs: list[Path]) -> list[Path]:
    """Every file named or below a named directory, in a stable order; other types are reported."""
    found: list[Path] = []
    for item in inputs:
        candidates = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for path in candidates:
            if media_kind(path) is None:
                console.print(f"skipped {path}: not a photo or video type Veil handles", markup=False)
            else:
                found.append(path)
    return found


def _submit_one(
    client: VeilClient, path: Path, operation: str, parameters: dict[str, Any], callback_url: str | None
) -> dict[str, Any] | None:
    """Uploads and submits one file; None when the server refused the file itself (reported)."""
    try:
        file = client.upload(path)
    except ApiError as exc:
        if exc.status not in FILE_REFUSED_STATUSES:
            raise
        console.print(f"failed {path}: {exc}", soft_wrap=True, markup=False)
        return None
    return client.create_task(
        operation=operation, parameters=parameters, input_id=file["id"], callback_url=callback_url
    )


@task_app.command()
def submit(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            exists=True, metavar="FILE|DIR...", help="Photos, videos, or directories (recursive)."
        ),
    ],
    operation: Annotated[
        str, typer.Option(metavar="anonymize|detect", help="What the server does.")
    ] = "anonymize",
    param: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help='An operation parameter; JSON values allowed (e.g. detectors=["face"]). Repeatable.',
        ),
    ] = None,
    callback_url: Annotated[
        str | None, typer.Option(help="Receives a signed POST of the task when it ends.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Then wait for the tasks, as `veil task wait`.")
    ] = False,
    as_json: AsJson = False,
    interval: Interval = 0.5,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Upload each photo and video and start a task on it; print the task ids (one per line)."""
    parameters = parse_parameters(param or [])
    sources = _collect(inputs)
    if not sources:
        console.print("nothing to submit: no photo or video among the inputs")
        raise typer.Exit(1)
    with command_client(url, api_key) as client:
        tasks = []
        for path in sources:
            task = _submit_one(client, path, operation, parameters, callback_url)
            if task is not None:
                tasks.append(task)
                console.print(f"submitted {path} as {task['id']}", markup=False, highlight=False)
                typer.echo(json.dumps({"source": str(path), "task": task}) if as_json else task["id"])
        all_done = _wait_all(client, [task["id"] for task in tasks], interval) if wait else True
    if len(tasks) < len(sources) or not all_done:
        raise typer.Exit(1)


def _error_text(task: Mapping[str, Any]) -> str:
    error = task.get("error")
    if isinstance(error, dict):
        return str(error.get("detail") or error.get("message") or error.get("title") or json.dumps(error))
    return str(error) if error else "no detail given"


def _wait_all(client: VeilClient, task_ids: list[str], interval: float) -> bool:
    """Polls until every task is completed, failed or cancelled, with a bar per task; True if all
    completed. Failures are printed with the server's detail."""
    latest = {task_id: client.get_task(task_id) for task_id in task_ids}  # unknown ids fail before any bar
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )
    bars = {task_id: progress.add_task(task_id, total=1.0, status="") for task_id in task_ids}
    with progress:
        while True:
            for task_id, task in latest.items():
                done = 1.0 if task["status"] == "completed" else float(task.get("progress") or 0.0)
                progress.update(bars[task_id], completed=done, status=task["status"])
            pending = [task_id for task_id, task in latest.items() if task["status"] not in FINAL_STATUSES]
            if not pending:
                break
            time.sleep(interval)
            latest.update({task_id: client.get_task(task_id) for task_id in pending})
    unsuccessful = [task for task in latest.values() if task["status"] != "completed"]
    for task in unsuccessful:
        console.print(f"{task['id']} {task['status']}: {_error_text(task)}", soft_wrap=True, markup=False)
    return not unsuccessful


@task_app.command("wait")
def wait_command(
    task_ids: TaskIds, interval: Interval = 0.5, url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = ""
) -> None:
    """Wait for tasks to end, with a progress bar each; exit status 1 if any failed or was cancelled."""
    with command_client(url, api_key) as client:
        all_done = _wait_all(client, task_ids, interval)
    if not all_done:
        raise typer.Exit(1)


@task_app.command("status")
def show_status(
    task_id: Annotated[str, typer.Argument(metavar="ID")], url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = ""
) -> None:
    """Print a task as the API returns it (JSON)."""
    with command_client(url, api_key) as client:
        typer.echo(json.dumps(client.get_task(task_id), indent=2))


@task_app.command()
def download(
    task_ids: TaskIds,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="DIR", help="Directory for the files.")
    ] = Path("."),
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """Download every file a completed task generated; print the paths written."""
    output.mkdir(parents=True, exist_ok=True)
    with command_client(url, api_key) as client:
        for task_id in task_ids:
            task = client.get_task(task_id)
            if task["status"] != "completed":
                raise CommandError(f"task {task_id} is {task['status']}; only a completed task has results.")
            for file in (task.get("result") or {}).get("generated_files", []):
                typer.echo(str(client.download(file, output)))


@task_app.command("list")
def list_tasks(
    status: Annotated[str | None, typer.Option(help="Only tasks with this status.")] = None,
    operation: Annotated[str | None, typer.Option(help="Only tasks of this operation.")] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter", metavar="JSON", help='JSON Logic, e.g. {"==": [{"var": "status"}, "failed"]}.'
        ),
    ] = None,
    page: Annotated[int, typer.Option(metavar="N", min=1)] = 1,
    page_size: Annotated[int, typer.Option(metavar="N", min=1)] = 20,
    as_json: AsJson = False,
    url: UrlOpt = DEFAULT_URL,
    api_key: ApiKeyOpt = "",
) -> None:
    """List your tasks (every key's, with an admin key), newest first."""
    query: dict[str, str | int] = {"page": page, "page_size": page_size}
    optional = {"status": status, "operation": operation, "filter": filter_}
    query.update({name: value for name, value in optional.items() if value is not None})
    with command_client(url, api_key) as client:
        answer = client.list_tasks(query)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    table = Table(show_header=True)
    # Ids are copied from here, so they are never cut or wrapped; the other columns give way instead.
    table.add_column("id", no_wrap=True, min_width=len("task_") + 16)
    for column in ("input", "operation", "status", "progress", "created"):
        table.add_column(column, overflow="fold")
    for task in answer.get("results", []):
        progress = f"{100 * float(task.get('progress') or 0):.0f}%"
        created = str(task["created_at"]).replace("T", " ")[:19]
        row = (task["id"], _input_text(task), task["operation"], task["status"], progress, created)
        table.add_row(*(escape(str(cell)) for cell in row))
    Console().print(table)
    count = answer.get("count", len(answer.get("results", [])))
    console.print(f"page {page}, {count} {'task' if count == 1 else 'tasks'} in all")


def _input_text(task: Mapping[str, Any]) -> str:
    """The input file's name, else its id (a task made before names were recorded)."""
    return str(task.get("input_name") or (task.get("parameters") or {}).get("input") or "")


@task_app.command()
def cancel(
    task_id: Annotated[str, typer.Argument(metavar="ID")], url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = ""
) -> None:
    """Cancel a queued or running task."""
    with command_client(url, api_key) as client:
        task = client.cancel_task(task_id)
    typer.echo(f"{task_id} {task['status']}")
