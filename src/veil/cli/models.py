"""`veil models derive`: the INT8 copies of the detection networks, made once at install from the packaged
weights (nothing is downloaded), so detectors on the CPU run 1.4-1.9x faster at equal recall."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from veil.engine.detectors.quantized import NETWORKS, default_cache_dir, derived_int8, int8_model_of
from veil.engine.errors import ModelError

__all__ = ["models_app"]

models_app = typer.Typer(help="Derive the INT8 copies of the detection networks.", no_args_is_help=True)
console = Console(stderr=True)

CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="Where to write them; default $XDG_CACHE_HOME/veil/models (~/.cache/veil/models), where the "
        "detectors look.",
        show_default=False,
    ),
]


@models_app.command()
def derive(cache_dir: CacheDir = None) -> None:
    """Quantize each detection network to INT8 from its packaged weights, on calibration frames drawn here
    (about two minutes on two cores; kept until Veil, a model or ONNX Runtime changes)."""
    folder = cache_dir or default_cache_dir()
    failed = False
    for network in NETWORKS:
        if (found := derived_int8(network, folder)) is not None:
            console.print(f"{network}: INT8 copy already derived ({found})")
            continue
        console.print(f"{network}: deriving the INT8 copy...")
        started = time.monotonic()
        try:
            path = int8_model_of(network, folder)
        except ModelError as exc:
            console.print(f"[red]{network}: {exc}[/red]; its FP32 weights will be used")
            failed = True
            continue
        console.print(f"{network}: {path} ({time.monotonic() - started:.0f} s)")
    if failed:
        raise typer.Exit(1)
