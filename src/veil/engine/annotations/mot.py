"""MOT 1.1, the MOT Challenge ground-truth layout: `gt/gt.txt` with a
`frame,track,x,y,w,h,not_ignored,class,visibility` line per box (frames, tracks and classes counted from
1), `gt/labels.txt` naming the classes, images `img1/000001.jpg`; one sequence per video (in a folder named
after it when several are exported).

Veil's track ids are written plus one (MOT has no track 0); boxes without a track get one-frame tracks.
There is no place for scores or sources.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from veil.engine.annotations.archive import Bundle, DatasetWriter
from veil.engine.annotations.base import (
    LABELS,
    AnnotationFormat,
    Collector,
    Document,
    ExportDataset,
    FormatInfo,
    register,
    track_rows,
)
from veil.engine.errors import AnnotationFileError

__all__ = ["Mot"]

_GT = "gt/gt.txt"


@register
class Mot(AnnotationFormat):
    info = FormatInfo("MOT 1.1", "1.1", True, True, ("video",), tracks=True, scores=False)

    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        single = len(dataset.documents) == 1
        for document in dataset.documents:
            folder = "" if single else f"{document.stem}/"
            out.write_bytes(f"{folder}gt/labels.txt", "".join(f"{label}\n" for label in LABELS).encode())
            with out.open_text(f"{folder}{_GT}") as text:
                text.lines(_rows(dataset, document))
            one = ExportDataset([document], dataset.frame_step, dataset.images, dataset.progress)
            one.write_images(out, f"{folder}img1", lambda item: f"{item.frame + 1:06d}.jpg")

    def read(self, bundle: Bundle, target: Collector) -> None:
        names = bundle.find(_GT)
        if not names:
            raise AnnotationFileError(f"{bundle.name}: no gt/gt.txt in it (MOT layout)")
        for name in names:
            folder = name.removesuffix(_GT)
            document = target.document_for_folder(folder)
            labels_file = f"{folder}gt/labels.txt"
            labels = bundle.read_text(labels_file).split() if labels_file in bundle.names() else list(LABELS)
            rows = csv.reader(bundle.read_text(name).splitlines())
            for line_no, row in enumerate(rows, 1):
                if row:
                    _read_row(row, f"{bundle.name}: {name} line {line_no}", labels, document, target)


def _rows(dataset: ExportDataset, document: Document) -> Iterator[str]:
    tracks = track_rows(dataset, document)
    boxes = [(frame, track, d, row) for track, rows in tracks.items() for frame, d, row in rows]
    for frame, track, d, row in sorted(boxes, key=lambda b: (b[0], b[1])):
        x0, y0, x1, y1 = (round(float(v), 2) for v in d.xyxy[row])
        klass = LABELS.index(str(d.label[row])) + 1
        yield f"{frame + 1},{track + 1},{x0},{y0},{round(x1 - x0, 2)},{round(y1 - y0, 2)},1,{klass},1\n"


def _read_row(row: list[str], where: str, labels: list[str], document: str, target: Collector) -> None:
    try:
        frame, track = int(row[0]), int(float(row[1]))
        x, y, w, h = (float(v) for v in row[2:6])
        klass = int(float(row[7])) if len(row) > 7 else 1
    except (ValueError, IndexError) as exc:
        raise AnnotationFileError(f"{where}: not a MOT 'frame,track,x,y,w,h,...' line") from exc
    label = labels[klass - 1] if 1 <= klass <= len(labels) else f"class {klass}"
    target.add(document, frame - 1, (x, y, x + w, y + h), label, track_id=track - 1 if track > 0 else -1)
