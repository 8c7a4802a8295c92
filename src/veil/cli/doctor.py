"""`veil doctor`: what a post-installation check shows, models first, then FFmpeg."""

from __future__ import annotations

import av
import onnxruntime
from rich.console import Console
from rich.table import Table

from veil.engine.detectors.base import DetectorConfig, available_detectors, load_detector
from veil.engine.detectors.quantized import NETWORKS, default_cache_dir, derived_int8
from veil.engine.errors import ModelError

__all__ = ["run_doctor"]

_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libaom-av1", "aac", "libopus")
_DECODERS = ("h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "aac", "mp3", "opus")


def _model_table(console: Console, config: DetectorConfig) -> bool:
    table = Table(title="Detectors (entry points: veil.detectors)")
    for column in ("name", "labels", "model", "package", "licence", "precision"):
        table.add_column(column)
    ok = True
    providers = []
    for name in available_detectors():
        try:
            info = load_detector(name, config).info
        except ModelError as exc:
            table.add_row(name, "", f"[red]{exc}[/red]", "", "", "")
            ok = False
            continue
        labels = ", ".join(info.labels)
        table.add_row(info.name, labels, info.model, info.package, info.license, info.precision)
        if info.verifier is not None:
            checker = info.verifier
            table.add_row("", "verifier", checker.model, checker.package, checker.license, checker.precision)
        providers.append(f"{info.name} on {info.provider.removesuffix('ExecutionProvider')}")
    console.print(table)
    console.print(f"Detectors run: {', '.join(providers)}")
    _int8_line(console)
    return ok


def _int8_line(console: Console) -> None:
    """Where the INT8 copies come from, or how to make them: they are derived here, never downloaded."""
    try:
        missing = [network for network in NETWORKS if derived_int8(network) is None]
    except ModelError:
        return  # a packaged model is missing; the table above says so
    if missing:
        console.print(
            f"[yellow]No INT8 copy of {', '.join(missing)}: FP32 runs instead. "
            "`veil models derive` makes them (1.4-1.9x faster on the CPU, same recall).[/yellow]"
        )
    else:
        console.print(f"INT8 copies derived at install from the packaged weights, in {default_cache_dir()}")


def _codec_table(console: Console) -> bool:
    available = av.codecs_available
    table = Table(title=f"PyAV {av.__version__}, FFmpeg libavcodec {_libavcodec_version()}")
    table.add_column("codec")
    table.add_column("encode")
    table.add_column("decode")
    for name in dict.fromkeys(_ENCODERS + _DECODERS):
        encode = _can_encode(name) if name in _ENCODERS else None
        decode = name in available if name in _DECODERS else None
        table.add_row(name, _mark(encode), _mark(decode))
    console.print(table)
    return _can_encode("libx264") and "h264" in available


def _can_encode(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises several types for a missing codec
        return False
    return True


def _libavcodec_version() -> str:
    major, minor, micro = av.library_versions["libavcodec"]
    return f"{major}.{minor}.{micro}"


def _mark(value: bool | None) -> str:
    return "" if value is None else "[green]yes[/green]" if value else "[red]no[/red]"


def run_doctor(console: Console, config: DetectorConfig) -> bool:
    """Prints the check; returns False when a model or the default video codec is unusable."""
    providers = ", ".join(onnxruntime.get_available_providers())
    console.print(f"ONNX Runtime {onnxruntime.__version__}, providers: {providers}")
    models_ok = _model_table(console, config)
    codecs_ok = _codec_table(console)
    console.print("[green]ready[/green]" if models_ok and codecs_ok else "[red]not ready[/red]")
    return models_ok and codecs_ok
