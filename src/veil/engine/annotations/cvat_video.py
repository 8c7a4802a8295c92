"""CVAT for video 1.1: `annotations.xml` with a `<track>` per track id, a `<box>` on each key frame and an
`outside` box where the track leaves the picture; one file per video (`<video name without suffix>/
annotations.xml` when several are exported). Images under `images/`.

Read back as CVAT shows it: frames between two key frames are interpolated (held still before an outside
box), and a track with no final outside box lasts to the end of the video.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from xml.etree.ElementTree import Element

from veil.engine.annotations.archive import Bundle, DatasetWriter
from veil.engine.annotations.base import (
    AnnotationFormat,
    Collector,
    Document,
    ExportDataset,
    FormatInfo,
    register,
    track_rows,
)
from veil.engine.annotations.cvat_xml import box_xml, header, label_of, read_box, read_roots
from veil.engine.annotations.fields import BoxAttributes
from veil.engine.errors import AnnotationFileError

__all__ = ["CvatVideo"]

Corners = tuple[float, float, float, float]


@register
class CvatVideo(AnnotationFormat):
    info = FormatInfo("CVAT for video 1.1", "1.1", True, True, ("video",), tracks=True, scores=True)

    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        single = len(dataset.documents) == 1
        for document in dataset.documents:
            name = "annotations.xml" if single else f"{document.stem}/annotations.xml"
            with out.open_text(name) as text:
                text.lines(_document_xml(dataset, document))
        dataset.write_images(out, "images")

    def read(self, bundle: Bundle, target: Collector) -> None:
        for name, root in read_roots(bundle):
            tracks = root.findall("track")
            if not tracks and root.findall("image"):
                raise AnnotationFileError(f"{bundle.name}: {name} is CVAT for images, not CVAT for video")
            document = target.document_for_folder(str(PurePosixPath(name).parent).removeprefix("."))
            step = _frame_step(root)
            frame_count = target.media[document].frame_count
            for track in tracks:
                where = f"{bundle.name}: {name}: track {track.get('id')}"
                _read_track(track, where, document, step, frame_count, target)


def _document_xml(dataset: ExportDataset, document: Document) -> Iterator[str]:
    media = document.report.media
    frames = dataset.frames(document)
    yield header("interpolation", frames, media.width, media.height, False)
    for track_id, rows in sorted(track_rows(dataset, document).items()):
        first = rows[0]
        yield f'<track id="{track_id}" label="{first[1].label[first[2]]}" source="auto">\n'
        for n, (frame, boxes, row) in enumerate(rows):
            yield box_xml(boxes, row, f'frame="{frame}" keyframe="1" outside="0" ', False)
            following = frame + dataset.frame_step
            next_frame = rows[n + 1][0] if n + 1 < len(rows) else None
            if next_frame != following and following < frames.stop:
                yield box_xml(boxes, row, f'frame="{following}" keyframe="1" outside="1" ', False)
        yield "</track>\n"
    yield "</annotations>\n"


def _frame_step(root: Element) -> int:
    """The step of a `step=N` frame filter in the task's meta (CVAT keeps every N-th frame), else 1."""
    text = (root.findtext("meta/task/frame_filter") or root.findtext("meta/job/frame_filter") or "").strip()
    try:
        return max(int(text.removeprefix("step=")), 1) if text.startswith("step=") else 1
    except ValueError:
        return 1


def _read_track(
    track: Element, where: str, document: str, step: int, frame_count: int | None, target: Collector
) -> None:
    try:
        track_id = int(track.attrib["id"])
        keys = sorted(
            (
                (int(b.attrib["frame"]), b.get("outside") == "1", *read_box(b, where))
                for b in track.iter("box")
            ),
            key=lambda key: key[0],
        )
    except (KeyError, ValueError) as exc:
        raise AnnotationFileError(f"{where}: a track or box without a numeric id or frame ({exc})") from exc
    label = label_of(track, where)
    for key in keys:
        key[3]["track_id"] = track_id
    end = frame_count if frame_count is not None else (keys[-1][0] + 1 if keys else 0)
    for n, (frame, outside, corners, attributes) in enumerate(keys):
        if outside:
            continue
        following = keys[n + 1] if n + 1 < len(keys) else None
        stop = following[0] if following else end
        for shown in range(frame, max(stop, frame + 1), step):
            shape = _interpolated(corners, following, frame, shown)
            target.add(document, shown, shape, label, **attributes)


def _interpolated(
    corners: Corners, following: tuple[int, bool, Corners, BoxAttributes] | None, frame: int, shown: int
) -> Corners:
    if following is None or following[1] or shown == frame:
        return corners
    t = (shown - frame) / (following[0] - frame)
    x0, y0, x1, y1 = (a + (b - a) * t for a, b in zip(corners, following[2], strict=True))
    return x0, y0, x1, y1
