"""Ultralytics YOLO Detection 1.0: `data.yaml` naming the classes, a `labels/train/<item>.txt` per item
with one `class cx cy w h` line per box (fractions of the image size), images under `images/train/`.

The layout has no place for scores, sources or track ids: Ultralytics refuses label lines with more than
five columns. Files lie flat in their folder (Datumaro's reader looks no deeper), so an item's folders are
joined to its name with "__": "clip/frame_000012" is `labels/train/clip__frame_000012.txt`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from veil.engine.annotations.archive import Bundle, DatasetWriter
from veil.engine.annotations.base import (
    LABELS,
    AnnotationFormat,
    Collector,
    ExportDataset,
    FormatInfo,
    Item,
    register,
)
from veil.engine.errors import AnnotationContentError, AnnotationFileError

__all__ = ["UltralyticsYolo"]

_SUBSET = "train"


@register
class UltralyticsYolo(AnnotationFormat):
    info = FormatInfo(
        "Ultralytics YOLO Detection 1.0", "1.0", True, True, ("image", "video"), tracks=False, scores=False
    )

    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        data = {"path": ".", _SUBSET: f"images/{_SUBSET}", "names": dict(enumerate(LABELS))}
        with out.open_text("data.yaml") as text:
            text.write(yaml.safe_dump(data, sort_keys=False))
        with out.open_text(f"{_SUBSET}.txt") as text:
            text.lines(f"images/{_SUBSET}/{_flat(item.image_path)}\n" for item in dataset.all_items())
        for item in dataset.all_items():
            out.write_bytes(f"labels/{_SUBSET}/{_flat(item.id)}.txt", _label_lines(item).encode())
        dataset.write_images(out, f"images/{_SUBSET}", lambda item: _flat(item.image_path))

    def read(self, bundle: Bundle, target: Collector) -> None:
        names = _class_names(bundle)
        labels = [n for n in bundle.names() if n.startswith("labels/") and n.endswith(".txt")]
        for name in labels:
            document, frame = _resolve(PurePosixPath(name).stem, target)
            for line_no, line in enumerate(bundle.read_text(name).splitlines(), 1):
                if line.strip():
                    _read_line(line, f"{bundle.name}: {name} line {line_no}", names, document, frame, target)


def _flat(path: str) -> str:
    return path.replace("/", "__")


def _resolve(flat: str, target: Collector) -> tuple[str, int]:
    """The document and frame of a flat item name; a name with "__" of its own is tried as it is too."""
    try:
        return target.resolve(flat.replace("__", "/"))
    except AnnotationContentError:
        return target.resolve(flat)


def _label_lines(item: Item) -> str:
    d = item.boxes
    lines = []
    for row in range(len(d)):
        x0, y0, x1, y1 = (float(v) for v in d.xyxy[row])
        cx, cy = (x0 + x1) / 2 / item.width, (y0 + y1) / 2 / item.height
        w, h = (x1 - x0) / item.width, (y1 - y0) / item.height
        lines.append(f"{LABELS.index(str(d.label[row]))} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _class_names(bundle: Bundle) -> dict[int, str]:
    found = bundle.find("data.yaml")
    if not found:
        raise AnnotationFileError(f"{bundle.name}: no data.yaml in it (Ultralytics YOLO layout)")
    try:
        data: Any = yaml.safe_load(bundle.read_text(found[0]))
        names = data["names"]
        return (
            dict(enumerate(names)) if isinstance(names, list) else {int(k): str(v) for k, v in names.items()}
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AnnotationFileError(f"{bundle.name}: data.yaml does not name the classes ({exc})") from exc


def _read_line(
    line: str, where: str, names: dict[int, str], document: str, frame: int, target: Collector
) -> None:
    try:
        klass, *numbers = line.split()
        label = names.get(int(klass), klass)
        cx, cy, w, h = (float(v) for v in numbers)
    except ValueError as exc:
        raise AnnotationFileError(f"{where}: not a 'class cx cy w h' line") from exc
    size_w, size_h = target.media[document].width, target.media[document].height
    x0, y0 = (cx - w / 2) * size_w, (cy - h / 2) * size_h
    target.add(document, frame, (x0, y0, x0 + w * size_w, y0 + h * size_h), label)
