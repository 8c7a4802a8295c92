"""The interface every annotation format implements, the registry of formats, and the dataset items they
write and read.

A document is one media file's `Report` under a name: the file's relative POSIX path, e.g. "photo.jpg" or
"cam1/clip.mp4". Each frame written becomes an item: a photo is one item named by its path without the
suffix ("photo", image "photo.jpg"); a video frame is "<path without suffix>/frame_000123" (image
"cam1/clip/frame_000123.jpg"), the frame number being the index in the video from 0.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import ClassVar, Literal

import numpy as np

from veil.engine.annotations.archive import Bundle, DatasetWriter
from veil.engine.annotations.images import ImageSource
from veil.engine.detections import Detections
from veil.engine.errors import AnnotationContentError, UnknownFormatError
from veil.engine.report import MediaInfo, Report

__all__ = [
    "LABELS",
    "AnnotationFormat",
    "Collector",
    "Document",
    "ExportDataset",
    "FormatInfo",
    "Item",
    "MediaKind",
    "find_format",
    "formats",
    "register",
    "track_rows",
]

LABELS = ("face", "plate")
"""The labels Veil writes and accepts, in the order formats number them (face 0, plate 1)."""

MediaKind = Literal["image", "video"]
_FRAME_ITEM = re.compile(r"^(?:(?P<stem>.+)/)?frame_(?P<frame>\d+)$")


@dataclass(frozen=True)
class FormatInfo:
    """What `GET /v1/formats` says of one format.

    Attributes:
        name: the name CVAT gives it, e.g. "COCO 1.0"; also the name export and import take.
        version: the format's version, e.g. "1.0".
        ext: what the export is: always "ZIP" here.
        can_export: Veil writes it.
        can_import: Veil reads it.
        media: the media kinds it fits ("image", "video").
        tracks: it keeps track ids.
        scores: it keeps each box's score and source.
    """

    name: str
    version: str
    can_export: bool
    can_import: bool
    media: tuple[MediaKind, ...]
    tracks: bool
    scores: bool
    ext: str = "ZIP"


@dataclass(frozen=True)
class Document:
    """One media file's detections under its name (a relative POSIX path such as "cam1/clip.mp4")."""

    name: str
    report: Report

    @property
    def stem(self) -> str:
        """The name without its suffix, the prefix of its items."""
        return str(PurePosixPath(self.name).with_suffix(""))

    @property
    def kind(self) -> MediaKind:
        return self.report.media.type


@dataclass(frozen=True)
class Item:
    """One frame of one document as a dataset item; `boxes` are xyxy pixels of the upright frame."""

    document: Document
    frame: int
    boxes: Detections

    @property
    def id(self) -> str:
        if self.document.kind == "image":
            return self.document.stem
        return f"{self.document.stem}/frame_{self.frame:06d}"

    @property
    def image_path(self) -> str:
        """Where its image goes in a dataset, relative to the format's image folder."""
        return self.document.name if self.document.kind == "image" else f"{self.id}.jpg"

    @property
    def width(self) -> int:
        return self.document.report.media.width

    @property
    def height(self) -> int:
        return self.document.report.media.height


class ExportDataset:
    """The documents to export, the frames each contributes (every `frame_step`-th of a video) and where
    their images come from (None: annotations only)."""

    def __init__(
        self,
        documents: Sequence[Document],
        frame_step: int,
        images: ImageSource | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.documents = documents
        self.frame_step = frame_step
        self.images = images
        self.progress = progress

    def frames(self, document: Document) -> range:
        """Frame indices written for a document: 0 for a photo; every `frame_step`-th frame of a video,
        up to the last frame the media declares or holds boxes on."""
        if document.kind == "image":
            return range(1)
        report = document.report
        last_boxed = report.frames[-1].index + 1 if report.frames else 0
        return range(0, max(report.media.frame_count or 0, last_boxed), self.frame_step)

    def items(self, document: Document) -> Iterator[Item]:
        boxed = {f.index: f.detections for f in document.report.frames}
        empty = Detections.empty()
        for frame in self.frames(document):
            yield Item(document, frame, boxed.get(frame, empty))

    def all_items(self) -> Iterator[Item]:
        for document in self.documents:
            yield from self.items(document)

    def write_images(
        self, out: DatasetWriter, folder: str, name: Callable[[Item], str] | None = None
    ) -> None:
        """Writes each item's image under `folder`, at `name(item)` or else `item.image_path`, streaming
        one image at a time; does nothing without an image source."""
        if self.images is None:
            return
        total, done = sum(len(self.frames(d)) for d in self.documents), 0
        for document in self.documents:
            items = {item.frame: item for item in self.items(document)}
            for frame, data in self.images.images(document.name, document.kind, list(items)):
                item = items[frame]
                out.write_bytes(f"{folder}/{name(item) if name else item.image_path}", data)
                done += 1
                if self.progress is not None:
                    self.progress(done, total)


class AnnotationFormat(ABC):
    """One format: writes an `ExportDataset` into a zip, and reads a file of its own into a `Collector`."""

    info: ClassVar[FormatInfo]

    @abstractmethod
    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        """Writes the annotations (and, with `dataset.images`, the images) of every document."""

    def read(self, bundle: Bundle, target: Collector) -> None:
        """Reads every box in `bundle` into `target`.

        Raises:
            AnnotationFileError: the bundle is not in this format or is damaged.
            AnnotationContentError: what it says does not fit the media (raised by `target`).
            UnsafeArchiveError: XML with a DTD or entities.
        """
        raise UnknownFormatError(f"{self.info.name} can be exported, not imported")


_REGISTRY: dict[str, AnnotationFormat] = {}


def register(cls: type[AnnotationFormat]) -> type[AnnotationFormat]:
    """Class decorator adding a format to the registry under `cls.info.name`."""
    _REGISTRY[cls.info.name] = cls()
    return cls


def formats() -> list[FormatInfo]:
    """Every format Veil reads or writes, by name."""
    return sorted((f.info for f in _REGISTRY.values()), key=lambda info: info.name)


def find_format(name: str) -> AnnotationFormat:
    """The format named `name` (as `formats()` spells it, case ignored).

    Raises:
        UnknownFormatError: no format has this name; the message lists those that do.
    """
    for known, fmt in _REGISTRY.items():
        if known.casefold() == name.strip().casefold():
            return fmt
    raise UnknownFormatError(
        f"no annotation format named {name!r}; Veil knows {', '.join(sorted(_REGISTRY))}"
    )


def track_rows(dataset: ExportDataset, document: Document) -> dict[int, list[tuple[int, Detections, int]]]:
    """Boxes of a video grouped by track, key frames in order: track id -> [(frame, its boxes, row)].

    Boxes with no track (id -1) become one-frame tracks numbered after the highest track id, since track
    formats hold every box in a track.
    """
    frames = set(dataset.frames(document))
    tracks: dict[int, list[tuple[int, Detections, int]]] = {}
    next_id = max((int(f.detections.track_id.max()) for f in document.report.frames), default=-1) + 1
    for frame in document.report.frames:
        if frame.index not in frames:
            continue
        for row, track in enumerate(frame.detections.track_id.tolist()):
            if track < 0:
                track, next_id = next_id, next_id + 1
            tracks.setdefault(track, []).append((frame.index, frame.detections, row))
    return tracks


class Collector:
    """Boxes read from a file, checked against the media they are for, then turned into reports.

    Every box is checked as it is added, so a bad file fails before anything is returned.
    """

    # Other tools round or pad box corners; up to this much outside the frame is clipped, not refused.
    EDGE_TOLERANCE_PX = 1.0

    def __init__(self, media: Sequence[tuple[str, MediaInfo]], source_name: str) -> None:
        self.media = dict(media)
        self.source_name = source_name
        self._boxes: dict[str, dict[int, list[tuple[list[float], str, float, str, int]]]] = {
            name: {} for name in self.media
        }
        self._by_stem = {str(PurePosixPath(name).with_suffix("")): name for name in self.media}

    def resolve(self, item: str) -> tuple[str, int]:
        """The document and frame an item name or image path stands for (suffix optional).

        Raises:
            AnnotationContentError: the item names no media file given.
        """
        key = item.removeprefix("./")
        key = str(PurePosixPath(key).with_suffix("")) if PurePosixPath(key).suffix else key
        name = self._by_stem.get(key)
        if name is not None and self.media[name].type == "image":
            return name, 0
        match = _FRAME_ITEM.match(key)
        if match:
            document = self.document_for_folder(match["stem"] or "")
            return document, int(match["frame"])
        raise AnnotationContentError(
            f"{self.source_name}: item {item!r} names none of the media files ({', '.join(self.media)})"
        )

    def document_for_folder(self, folder: str) -> str:
        """The video a folder stands for: its name without suffix, or "" when only one video is given.

        Raises:
            AnnotationContentError: no video matches.
        """
        videos = [name for name, info in self.media.items() if info.type == "video"]
        name = self._by_stem.get(folder.strip("/"))
        if name in videos:
            return name
        if not folder.strip("/") and len(videos) == 1:
            return videos[0]
        where = f"folder {folder!r}" if folder else "the file"
        raise AnnotationContentError(
            f"{self.source_name}: {where} names none of the videos ({', '.join(videos) or 'none given'})"
        )

    def add(
        self,
        document: str,
        frame: int,
        xyxy: Sequence[float],
        label: str,
        *,
        score: float = 1.0,
        source: str = "detected",
        track_id: int = -1,
    ) -> None:
        """Adds one box of `document`'s frame, in upright-frame pixels.

        Raises:
            AnnotationContentError: unknown label, frame beyond the media, box outside the frame or empty,
                score outside [0, 1], or a source other than "detected" or "tracked".
        """
        info = self.media[document]
        where = f"{self.source_name}: {document} frame {frame}"
        if label not in LABELS:
            raise AnnotationContentError(f"{where}: unknown label {label!r}; Veil knows {', '.join(LABELS)}")
        last = 0 if info.type == "image" else info.frame_count
        if frame < 0 or (last is not None and frame > max(last - 1, 0)):
            raise AnnotationContentError(f"{where}: no such frame (the media has {last or 1})")
        if not 0.0 <= score <= 1.0 or source not in ("detected", "tracked"):
            raise AnnotationContentError(f"{where}: score {score} or source {source!r} is not valid")
        self._boxes[document].setdefault(frame, []).append(
            (self._inside(where, xyxy, info), label, score, source, track_id)
        )

    def reports(self) -> dict[str, Report]:
        """A report per media file given (without boxes where the file had none), frames in order."""
        out: dict[str, Report] = {}
        for name, frames in self._boxes.items():
            info = self.media[name]
            report = Report(info)
            for frame in sorted(frames):
                rows = frames[frame]
                detections = Detections(
                    np.array([r[0] for r in rows], np.float32),
                    np.array([r[2] for r in rows], np.float32),
                    np.array([r[1] for r in rows]),
                    np.array([r[4] for r in rows], np.int64),
                    np.array([r[3] for r in rows]),
                )
                report.add(frame, frame / info.fps if info.fps else 0.0, detections)
            out[name] = report
        return out

    def _inside(self, where: str, xyxy: Sequence[float], info: MediaInfo) -> list[float]:
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        tol = self.EDGE_TOLERANCE_PX
        if not all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0:
            raise AnnotationContentError(f"{where}: box {[x0, y0, x1, y1]} is empty or not a number")
        if x0 < -tol or y0 < -tol or x1 > info.width + tol or y1 > info.height + tol:
            raise AnnotationContentError(
                f"{where}: box {[round(v, 2) for v in (x0, y0, x1, y1)]} lies outside the "
                f"{info.width}x{info.height} frame"
            )
        return [max(x0, 0.0), max(y0, 0.0), min(x1, info.width), min(y1, info.height)]
