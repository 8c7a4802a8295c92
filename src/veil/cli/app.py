"""The `veil` command: anonymize or detect in local files, check the installation, run the task server
(`serve`, `worker`, `apikey`) and talk to it (`task`, `dataset`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from veil.cli.apikeys import apikey_app
from veil.cli.client import task_app
from veil.cli.datasets import dataset_app
from veil.cli.doctor import run_doctor
from veil.cli.evaluate import eval_command
from veil.cli.flower import flower
from veil.cli.models import models_app
from veil.cli.progress import BatchProgress, print_summary
from veil.cli.readable_help import ReadableHelpGroup
from veil.cli.serve import scheduler, serve, worker
from veil.cli.services_doctor import check_services
from veil.cli.styles import StyleSpecError, build_styles
from veil.cli.task_requests import add_request_commands
from veil.core.parameters import closest_name
from veil.core.settings import get_settings
from veil.engine.anonymizer import DEFAULT_DETECTORS, AnonymizeOptions, Anonymizer
from veil.engine.batch import FileJob, plan_jobs, run_jobs, summarize
from veil.engine.detectors.base import DetectorConfig, Device
from veil.engine.errors import VeilError
from veil.engine.media.image import DEFAULT_MAX_PIXELS
from veil.engine.redactors.style import DEFAULT_STYLES
from veil.engine.report import Report
from veil.engine.video import VideoOptions

__all__ = ["app", "main"]

DEFAULT_DETECTOR_LIST = ",".join(DEFAULT_DETECTORS)

app = typer.Typer(
    help="Find faces and licence plates in photos and videos and obscure them, here or on a Veil server.",
    no_args_is_help=True,
    add_completion=False,
    cls=ReadableHelpGroup,
)
console = Console(stderr=True)

Inputs = Annotated[
    list[Path],
    typer.Argument(metavar="PATH...", help="Files or directories (walked recursively).", show_default=False),
]
OutDir = Annotated[
    Path,
    typer.Option("--output", "-o", metavar="DIR", help="Directory for the results (mirrors the inputs)."),
]
Labels = Annotated[
    str,
    typer.Option("--detectors", help="Comma-separated detectors to run (entry points of veil.detectors)."),
]
DeviceOpt = Annotated[str, typer.Option("--device", metavar="auto|cpu|cuda", help="Where detectors run.")]
Threshold = Annotated[
    float | None,
    typer.Option("--threshold", help="Minimum score; default: each detector's measured default."),
]
ModelPaths = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        metavar="DETECTOR=FILE",
        help="An ONNX file replacing that detector's weights. Repeatable.",
    ),
]
Jobs = Annotated[int, typer.Option("--jobs", "-j", metavar="N", min=1, help="Files processed in parallel.")]
SkipExisting = Annotated[
    bool, typer.Option("--skip-existing", help="Skip files whose results already exist.")
]
SummaryJson = Annotated[
    Path | None, typer.Option("--summary-json", metavar="FILE", help="Also write the summary as JSON here.")
]
DetectEvery = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        min=1,
        help="Run detection every N video frames, tracking between (default: every ~0.3 s).",
    ),
]
MaxPixels = Annotated[int, typer.Option("--max-pixels", help="Refuse photos with more pixels than this.")]


def _model_paths(specs: list[str] | None) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for spec in specs or []:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise typer.BadParameter(
                f"{spec!r}: use DETECTOR=FILE, e.g. face=my-centerface.onnx", param_hint="--model"
            )
        paths[name.strip()] = Path(file)
    return paths


def _detector_config(device: str, threshold: float | None) -> DetectorConfig:
    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("use auto, cpu or cuda", param_hint="--device")
    checked: Device = device  # type: ignore[assignment]
    return DetectorConfig(device=checked, threshold=threshold)


def _run(
    inputs: list[Path], out_dir: Path, anonymizer: Anonymizer, write_media: bool, jobs: int, skip: bool
) -> dict[str, Any]:
    planned = plan_jobs(inputs, out_dir, write_media=write_media)
    bars = BatchProgress(console, len(planned))

    def process(job: FileJob) -> Report:
        bar = bars.file_bar(job)
        try:
            return anonymizer.process_file(job.source, job.output, bar)
        finally:
            bar.close()

    with bars.running():
        outcomes = run_jobs(planned, process, workers=jobs, skip_existing=skip, on_outcome=bars.file_done)
    return summarize(outcomes)


def _finish(summary: dict[str, Any], summary_json: Path | None) -> None:
    print_summary(console, summary)
    if summary_json is not None:
        summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if summary["failures"]:
        raise typer.Exit(1)


@app.command()
def blur(
    inputs: Inputs,
    output: OutDir,
    detectors: Labels = DEFAULT_DETECTOR_LIST,
    device: DeviceOpt = "auto",
    threshold: Threshold = None,
    model: ModelPaths = None,
    method: Annotated[
        str | None, typer.Option(metavar="blur|pixelate|fill", help="How every label is obscured.")
    ] = None,
    shape: Annotated[
        str | None, typer.Option(metavar="ellipse|rectangle", help="Mask shape for every label.")
    ] = None,
    mask_scale: Annotated[
        float | None, typer.Option(help="Grow each mask by this factor (1 = the box).")
    ] = None,
    blur_strength: Annotated[
        float | None, typer.Option(help="Blur sigma as a fraction of the box's shorter side.")
    ] = None,
    pixel_blocks: Annotated[
        int | None, typer.Option(help="Pixelate: blocks across the box's shorter side.")
    ] = None,
    color: Annotated[str | None, typer.Option(metavar="COLOR", help="Fill colour, #RRGGBB or R,G,B.")] = None,
    soft_edge: Annotated[
        float | None, typer.Option(help="Feathered border, fraction of the box size.")
    ] = None,
    style: Annotated[
        list[str] | None,
        typer.Option(
            metavar="LABEL:OPTIONS",
            help="Style options for one label, e.g. plate:method=fill or face:blur_strength=1. Repeatable.",
        ),
    ] = None,
    draw: Annotated[bool, typer.Option("--draw", help="Outline boxes with label and score instead.")] = False,
    keep_metadata: Annotated[
        bool, typer.Option("--keep-metadata", help="Keep photo EXIF/XMP/IPTC, except GPS.")
    ] = False,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Drop audio and subtitle streams.")] = False,
    codec: Annotated[str, typer.Option(help="Video encoder (FFmpeg name).")] = VideoOptions.codec,
    crf: Annotated[int, typer.Option(help="Video quality, lower is better.")] = VideoOptions.crf,
    preset: Annotated[str, typer.Option(help="Video encoder preset.")] = VideoOptions.preset,
    detect_every: DetectEvery = None,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    jobs: Jobs = 1,
    skip_existing: SkipExisting = False,
    summary_json: SummaryJson = None,
) -> None:
    """Anonymize photos and videos: OUT/R gets the result and OUT/R.json the detections."""
    common = {
        key: str(value)
        for key, value in {
            "method": method, "shape": shape, "mask_scale": mask_scale, "blur_strength": blur_strength,
            "pixel_blocks": pixel_blocks, "color": color, "soft_edge": soft_edge,
        }.items()
        if value is not None
    }  # fmt: skip
    try:
        styles = build_styles(common, style or [])
    except StyleSpecError as exc:
        raise typer.BadParameter(str(exc)) from exc
    video = VideoOptions(
        codec=codec, crf=crf, preset=preset, keep_audio=not no_audio, detect_every=detect_every, draw=draw
    )
    options = AnonymizeOptions(
        styles=styles, draw=draw, keep_metadata=keep_metadata, max_pixels=max_pixels, video=video
    )
    config = _detector_config(device, threshold)
    models = _model_paths(model)
    summary = _load_and_run(inputs, output, detectors, config, models, options, jobs, skip_existing, True)
    _finish(summary, summary_json)


@app.command()
def detect(
    inputs: Inputs,
    output: OutDir,
    detectors: Labels = DEFAULT_DETECTOR_LIST,
    device: DeviceOpt = "auto",
    threshold: Threshold = None,
    model: ModelPaths = None,
    detect_every: DetectEvery = None,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    jobs: Jobs = 1,
    skip_existing: SkipExisting = False,
    summary_json: SummaryJson = None,
) -> None:
    """Only find faces and plates: OUT/R.json gets the detections, no media is written."""
    options = AnonymizeOptions(max_pixels=max_pixels, video=VideoOptions(detect_every=detect_every))
    config = _detector_config(device, threshold)
    models = _model_paths(model)
    summary = _load_and_run(inputs, output, detectors, config, models, options, jobs, skip_existing, False)
    _finish(summary, summary_json)


def _load_and_run(
    inputs: list[Path],
    output: Path,
    detectors: str,
    config: DetectorConfig,
    models: dict[str, Path],
    options: AnonymizeOptions,
    jobs: int,
    skip_existing: bool,
    write_media: bool,
) -> dict[str, Any]:
    names = [name.strip() for name in detectors.split(",") if name.strip()]
    try:
        anonymizer = Anonymizer.load(names, config, options, models)
        _check_style_labels(anonymizer)
        return _run(inputs, output, anonymizer, write_media, jobs, skip_existing)
    except VeilError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


def _check_style_labels(anonymizer: Anonymizer) -> None:
    """Refuses a `--style LABEL:...` whose label no detector of the run finds and no default style names:
    most likely misspelt (`fase`), it would obscure nothing while the run looks configured."""
    known = {label for detector in anonymizer.detectors for label in detector.info.labels}
    known |= set(DEFAULT_STYLES.per_label)
    for label in anonymizer.options.styles.per_label:
        if label not in known:
            hint = closest_name(label, sorted(known))
            meant = f"did you mean {hint!r}?" if hint else f"the labels are {', '.join(sorted(known))}"
            raise typer.BadParameter(f"no detector finds the label {label!r}; {meant}", param_hint="--style")


@app.command()
def doctor(
    device: DeviceOpt = "auto",
    services: Annotated[
        bool,
        typer.Option(
            "--services",
            help="Check instead what the settings connect to: database, broker, storage, file root.",
        ),
    ] = False,
) -> None:
    """Check the installation: each model, its package, licence and execution provider, and FFmpeg."""
    if services:
        if not check_services(console, get_settings()):
            raise typer.Exit(1)
        return
    ok = run_doctor(console, _detector_config(device, None))
    if not ok:
        raise typer.Exit(1)


app.add_typer(models_app, name="models")
app.command(name="eval")(eval_command)

# The task server and its client, listed after the local commands in --help.
app.command()(serve)
app.command()(worker)
app.command()(scheduler)
app.command()(flower)
add_request_commands(task_app)
app.add_typer(task_app, name="task")
app.add_typer(dataset_app, name="dataset")
app.add_typer(apikey_app, name="apikey")


def main() -> None:
    """Entry point of the `veil` console script."""
    sys.exit(app())


if __name__ == "__main__":
    main()
