"""ONNX Runtime sessions on the requested device, with failures turned into ModelError."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

import onnxruntime as ort

from veil.engine.detectors.base import Device
from veil.engine.errors import ModelError

__all__ = ["create_session", "package_version", "packaged_model", "providers_for"]


def providers_for(device: Device) -> list[str]:
    """Execution providers to ask for, in order of preference.

    Raises:
        ModelError: "cuda" was asked for but this ONNX Runtime build has no CUDA provider.
    """
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise ModelError("--device cuda needs onnxruntime-gpu and a CUDA GPU; this machine has neither")
    if device in ("cuda", "auto") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def packaged_model(package: str, resource: str) -> Path:
    """Path of a model file shipped inside an installed package.

    Raises:
        ModelError: the package or the file is missing.
    """
    try:
        path = Path(str(files(package).joinpath(resource)))
    except ModuleNotFoundError as exc:
        raise ModelError(f"package {package!r} is not installed; reinstall veil to get its model") from exc
    if not path.is_file():
        raise ModelError(f"model file {resource!r} is missing from package {package!r}")
    return path


def package_version(package: str) -> str:
    """The installed version of the package a model ships in; "unknown" if it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def create_session(model: Path | bytes, device: Device, threads: int = 0) -> ort.InferenceSession:
    """Opens an ONNX model on the device's providers.

    Args:
        model: path of the .onnx file, or the model's serialized bytes.
        device: "auto", "cpu" or "cuda".
        threads: intra-op threads; 0 lets ONNX Runtime choose.

    Raises:
        ModelError: the file is missing or not a loadable ONNX model.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Spinning worker threads burn the cores that video decoding and encoding need between inferences.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        source = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(source, sess_options=options, providers=providers_for(device))
    except ModelError:
        raise
    except Exception as exc:
        name = "in memory" if isinstance(model, bytes) else str(model)
        raise ModelError(f"cannot load ONNX model ({name}): {exc}") from exc
