"""Veil's detections in the annotation formats CVAT speaks, out and back in; a library with no HTTP, database
or queue in it.

    formats() -> list[FormatInfo]
        Every format, named as CVAT names it ("CVAT for video 1.1", "COCO 1.0", ...), with its version,
        export and import support, the media kinds it fits and whether it keeps track ids and scores.

    export_annotations(documents, format_name, target_zip, images=None, frame_step=1, progress=None)
        Writes a zip of `documents`, a sequence of (name, Report): name is the media file's relative POSIX
        path ("photo.jpg", "task-3/clip.mp4"), unique without its suffix. With `images` (an `ImageSource`,
        e.g. `MediaFiles({name: path})`), photos are copied in and video frames written as JPEG, one at a
        time. `frame_step` keeps every n-th video frame, for annotations and images alike; frame numbers
        stay those of the video. `progress(done, total)` follows the images written. On any error the
        partly written zip is deleted.

    import_annotations(source, format_name, media) -> dict[name, Report]
        Reads a zip (or a bare XML/JSON file) in that format and returns a report per media file given as
        (name, MediaInfo); items are matched to media by the names export writes ("photo",
        "task-3/clip/frame_000012"; "frame_000012" alone when one video is given; YOLO's flat files join
        folders with "__"). Boxes a person drew read as score 1, source "detected", no track.

Items: a photo is one item; a video contributes its frames (every `frame_step`-th), with or without boxes.
Labels are "face" and "plate". Score, source and track id are written as attributes where the format has a
place for them (`FormatInfo.scores`, `.tracks`): YOLO keeps neither, MOT keeps track ids only; track
formats (CVAT for video, MOT) give boxes without a track a one-frame track of their own.

Import refuses, naming the cause and returning nothing: a file of another format, boxes outside the frame
(by more than a pixel), frames beyond the video, unknown labels (with the list of known ones), XML with a
DTD or entities, zip members named outside their folder, and zips that expand too far.

Raises (both): AnnotationError subclasses from `veil.engine.errors`; MediaError when an image cannot be
read; OutputError when the zip cannot be written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

# Each format module registers its format on import.
from veil.engine.annotations import coco, cvat_images, cvat_video, datumaro, mot, voc, yolo  # noqa: F401
from veil.engine.annotations.archive import (
    MAX_RATIO,
    MAX_TOTAL_BYTES,
    Bundle,
    DatasetWriter,
    check_member_name,
)
from veil.engine.annotations.base import (
    LABELS,
    Collector,
    Document,
    ExportDataset,
    FormatInfo,
    find_format,
    formats,
)
from veil.engine.annotations.images import ImageSource, MediaFiles
from veil.engine.errors import AnnotationContentError, UnknownFormatError
from veil.engine.report import MediaInfo, Report

__all__ = [
    "LABELS",
    "FormatInfo",
    "ImageSource",
    "MediaFiles",
    "export_annotations",
    "formats",
    "import_annotations",
]

Progress = Callable[[int, int], None]
_KIND_WORDS = {"image": "photo", "video": "video"}


def export_annotations(
    documents: Sequence[tuple[str, Report]],
    format_name: str,
    target_zip: Path,
    images: ImageSource | None = None,
    frame_step: int = 1,
    progress: Progress | None = None,
) -> None:
    """Writes `documents` as a zip in the named format; see the package docstring.

    Raises:
        UnknownFormatError: no such format, it cannot export, or it does not fit a document's media kind.
        UnsafeArchiveError: a document name would escape the zip's folders.
        AnnotationContentError: two documents share a name without suffix.
        MediaError: an image cannot be read. OutputError: the zip cannot be written.
    """
    if frame_step < 1:
        raise ValueError(f"frame_step must be 1 or more, not {frame_step}")
    fmt = find_format(format_name)
    docs = _documents(documents, fmt.info)
    writer = DatasetWriter(target_zip)
    try:
        fmt.export(ExportDataset(docs, frame_step, images, progress), writer)
        writer.close()
    except BaseException:
        writer.close()
        target_zip.unlink(missing_ok=True)
        raise


def import_annotations(
    source: Path,
    format_name: str,
    media: Sequence[tuple[str, MediaInfo]],
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: int = MAX_RATIO,
) -> dict[str, Report]:
    """Reads `source` in the named format into a report per media file; see the package docstring.

    Args:
        max_total_bytes: most bytes the zip may unpack to, all members together.
        max_ratio: most a member over 1 MiB may expand relative to its compressed size.

    Raises:
        UnknownFormatError: no such format, or it cannot import.
        AnnotationFileError: not this format, or damaged.
        AnnotationContentError: boxes, frames, labels or items that do not fit `media`.
        UnsafeArchiveError: unsafe member names, a zip bomb, XML with a DTD or entities.
    """
    fmt = find_format(format_name)
    if not fmt.info.can_import:
        raise UnknownFormatError(f"{fmt.info.name} can be exported, not imported")
    target = Collector(media, source.name)
    with Bundle(source, max_total_bytes, max_ratio) as bundle:
        fmt.read(bundle, target)
    return target.reports()


def _documents(documents: Sequence[tuple[str, Report]], info: FormatInfo) -> list[Document]:
    docs = [Document(check_member_name(name, "export"), report) for name, report in documents]
    stems: set[str] = set()
    for doc in docs:
        if doc.kind not in info.media:
            held = " and ".join(_KIND_WORDS[kind] + "s" for kind in info.media)
            raise UnknownFormatError(
                f"{info.name} holds {held} only; {doc.name} is a {_KIND_WORDS[doc.kind]}"
            )
        if doc.stem in stems:
            raise AnnotationContentError(f"two media files would share the dataset name {doc.stem!r}")
        stems.add(doc.stem)
    return docs
