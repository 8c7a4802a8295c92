"""The issue-11 round trip on real media: anonymize, export the detections in a format, import the file
unchanged, render the imported boxes on the original, and count the output frames (or the photo) that equal
the anonymized ones. Anything short of all of them means a render of corrected boxes would also change
what the person did not touch.

    .venv/bin/python bench/annotations_roundtrip.py ../shared/data/dev/videos/*.mp4 \\
        $(find ../shared/data/dev/faces/wider_dev -name '*.jpg' | head -20)

Runs the engine in one process (a long video in one piece; the service cuts anonymize and render tasks of
long videos at the same key frames, checked by tests/worker/test_segments.py).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from veil.engine.annotations import export_annotations, formats, import_annotations
from veil.engine.anonymizer import DEFAULT_DETECTORS, Anonymizer
from veil.engine.detectors.base import DetectorConfig
from veil.engine.media.kinds import media_kind
from veil.engine.render import render_file


def decoded(path: Path) -> list[npt.NDArray[np.uint8]]:
    if media_kind(path) == "image":
        return [np.asarray(Image.open(path))]
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def round_trip(anonymizer: Anonymizer, source: Path, format_names: list[str], folder: Path) -> None:
    anonymized = folder / f"anonymized{source.suffix}"
    report = anonymizer.process_file(source, anonymized)
    expected = decoded(anonymized)
    for format_name in format_names:
        exported = folder / "export.zip"
        export_annotations([(source.name, report)], format_name, exported)
        imported = import_annotations(exported, format_name, [(source.name, report.media)])[source.name]
        rendered = folder / f"rendered{source.suffix}"
        render_file(source, rendered, {frame.index: frame.detections for frame in imported.frames})
        got = decoded(rendered)
        equal = sum(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
        boxes = sum(len(frame.detections) for frame in report.frames)
        print(f"{source.name}\t{format_name}\t{boxes} boxes\t{equal} of {len(expected)} frames equal")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("media", nargs="+", type=Path)
    args = parser.parse_args()
    anonymizer = Anonymizer.load(list(DEFAULT_DETECTORS), DetectorConfig())
    for source in args.media:
        kind = media_kind(source)
        names = [f.name for f in formats() if f.can_import and kind in f.media]
        with tempfile.TemporaryDirectory(prefix="veil-roundtrip-") as tmp:
            round_trip(anonymizer, source, names, Path(tmp))


if __name__ == "__main__":
    main()
