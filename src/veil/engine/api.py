"""`veil.anonymize`: one call for one file or one in-memory frame."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import overload

import numpy as np
import numpy.typing as npt

from veil.engine.anonymizer import Anonymizer
from veil.engine.detections import Detections
from veil.engine.errors import OutputError
from veil.engine.report import Report

__all__ = ["anonymize"]

Frame = npt.NDArray[np.uint8]


@cache
def _default_anonymizer() -> Anonymizer:
    return Anonymizer.load()


@overload
def anonymize(
    source: Frame, output: None = None, *, anonymizer: Anonymizer | None = None
) -> tuple[Frame, Detections]: ...


@overload
def anonymize(
    source: str | Path, output: str | Path | None = None, *, anonymizer: Anonymizer | None = None
) -> Report: ...


def anonymize(
    source: Frame | str | Path, output: str | Path | None = None, *, anonymizer: Anonymizer | None = None
) -> tuple[Frame, Detections] | Report:
    """Finds faces and plates and obscures them.

    Args:
        source: a BGR uint8 array of shape (H, W, 3), or the path of a photo or video.
        output: where to write the anonymized file; None with a path only detects.
        anonymizer: detectors and options to use; default: face and plate detectors with default options,
            loaded once per process.

    Returns:
        For an array, a new anonymized array and its detections; for a file, the detections report
        (`Report.to_dict()` gives the `veil.detections/1` document, `Report.to_json()` its JSON text).

    Raises:
        OutputError: `output` is the input file.
        MediaError: the file cannot be read or is not a photo or video.
        ModelError: a detector cannot be loaded.
    """
    worker = anonymizer or _default_anonymizer()
    if isinstance(source, np.ndarray):
        return worker.anonymize_frame(source)
    source_path = Path(source)
    output_path = None if output is None else Path(output)
    if output_path is not None and output_path.resolve() == source_path.resolve():
        raise OutputError(f"{output_path} is the input file; Veil never overwrites an input")
    return worker.process_file(source_path, output_path)
