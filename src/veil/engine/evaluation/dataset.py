"""What `veil eval` scores: the labelled photos and videos, their labels read with the annotation importers,
and Veil's detections of them, read from `veil detect`'s files or found by running the detectors (on videos,
the video pipeline: detection on key frames, tracking between).

Media files are named by their relative POSIX path under the images folder ("a.jpg", "street/b.jpg",
"cam1/clip.mp4"), as the labels name them (a video's frames as "cam1/clip/frame_000012") and as
`veil detect MEDIA -o DIR` names its files (`DIR/street/b.jpg.json`, `DIR/cam1/clip.mp4.json`).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from veil.engine.annotations import import_annotations
from veil.engine.annotations.archive import Bundle
from veil.engine.annotations.cvat_xml import read_roots
from veil.engine.anonymizer import Anonymizer
from veil.engine.errors import AnnotationFileError, MediaError, SizeMismatchError
from veil.engine.media.kinds import media_kind
from veil.engine.media.video import VideoReader
from veil.engine.report import MediaInfo, Report

__all__ = [
    "CVAT_XML",
    "find_media",
    "media_info",
    "read_detection_folder",
    "read_detections",
    "read_labels",
    "run_detectors",
]

CVAT_XML = "CVAT 1.1"
"""Either CVAT layout, told by the file: CVAT for video 1.1 when its XML holds tracks, else CVAT for images
1.1 (which CVAT also exports for a video task, a frame per image)."""

# How messages name a media kind.
_WORDS = {"image": "photo", "video": "video"}
# EXIF orientations that turn the photo a quarter: its upright width is the stored height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def find_media(images_dir: Path) -> dict[str, Path]:
    """Every photo and video under `images_dir` (hidden files and folders skipped) by relative POSIX path,
    sorted.

    Raises:
        MediaError: the folder does not exist or holds no photo or video.
    """
    if not images_dir.is_dir():
        raise MediaError(f"{images_dir}: no such folder of images")
    media: dict[str, Path] = {}
    for folder, dirs, files in os.walk(images_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if not name.startswith(".") and media_kind(path) is not None:
                media[path.relative_to(images_dir).as_posix()] = path
    if not media:
        raise MediaError(f"{images_dir}: no photos or videos in this folder (JPEG, PNG, MP4, MOV...)")
    return media


def media_info(path: Path) -> MediaInfo:
    """What the labels are checked against, read cheaply: a photo's upright size from its header; a
    video's upright size (display rotation applied) from its first frame, and its rate and frame count as
    the container declares them (a container that declares no count, such as Matroska, leaves a CVAT track
    with no final outside box ending at its last key frame).

    Raises:
        MediaError: the file is not a photo Pillow reads or a video FFmpeg reads.
    """
    if media_kind(path) == "video":
        return _video_info(path)
    return _photo_info(path)


def _video_info(path: Path) -> MediaInfo:
    reader = VideoReader(path, copy_streams=False)  # decodes the first frame only, for its rotation
    props = reader.props
    reader.close()
    width, height = props.display_wh
    fps = float(props.frame_rate) if props.frame_rate else None
    count = props.frame_count
    return MediaInfo("video", width, height, fps, count, count / fps if count and fps else None)


def _photo_info(path: Path) -> MediaInfo:
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, UnidentifiedImageError) as exc:
        raise MediaError(f"{path.name}: cannot read the image ({exc})") from exc
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return MediaInfo("image", width, height)


def read_labels(labels: Path, format_name: str, media: Mapping[str, MediaInfo]) -> dict[str, Report]:
    """The labelled boxes of every file in `media` (name -> size), read by the importer of `format_name`
    (or `CVAT_XML`).

    `labels` is a zip or a bare annotation file as CVAT exports them, or a folder holding that layout
    (its files other than media are zipped into a temporary file for the importer).

    Raises:
        AnnotationError: no such file, or the importer's errors (another format, unknown labels, a photo
            or video the labels name that is not in `media`, boxes outside a frame, frames beyond a video).
    """
    if not labels.exists():
        raise AnnotationFileError(f"{labels}: no such labels file or folder")
    if not labels.is_dir():
        return _import(labels, format_name, media)
    with tempfile.TemporaryDirectory(prefix="veil-eval-") as tmp:
        bundle = Path(tmp) / f"{labels.name}.zip"
        _zip_folder(labels, bundle)
        return _import(bundle, format_name, media)


def _import(source: Path, format_name: str, media: Mapping[str, MediaInfo]) -> dict[str, Report]:
    if format_name == CVAT_XML:
        with Bundle(source) as bundle:
            tracks = any(root.find("track") is not None for _, root in read_roots(bundle))
        format_name = "CVAT for video 1.1" if tracks else "CVAT for images 1.1"
    return import_annotations(source, format_name, list(media.items()))


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and media_kind(path) is None:
                out.write(path, path.relative_to(folder).as_posix())


def read_detections(detections_dir: Path, truth: Mapping[str, Report]) -> dict[str, Report | None]:
    """Each media file's `veil.detections/1` file `<detections_dir>/<name>.json`; None where there is none.

    Raises:
        AnnotationFileError: a file is not a veil.detections/1 document.
        SizeMismatchError: a file was made for a photo or video of another size or kind.
    """
    found: dict[str, Report | None] = {}
    for name, labelled in truth.items():
        path = detections_dir / f"{name}.json"
        found[name] = _read_report(path, labelled.media) if path.is_file() else None
    return found


def read_detection_folder(detections_dir: Path) -> dict[str, Report]:
    """Every `<name>.json` under `detections_dir` by media name, e.g. "street/b.jpg" for
    `street/b.jpg.json`.

    Raises:
        AnnotationFileError: no such folder, no file in it, or a file that is no veil.detections/1 document.
    """
    if not detections_dir.is_dir():
        raise AnnotationFileError(f"{detections_dir}: no such folder of detections")
    found = {
        path.relative_to(detections_dir).as_posix().removesuffix(".json"): _read_report(path)
        for path in sorted(detections_dir.rglob("*.json"))
    }
    if not found:
        raise AnnotationFileError(
            f"{detections_dir}: no detections in it (`veil detect MEDIA -o DIR` writes them)"
        )
    return found


def _read_report(path: Path, media: MediaInfo | None = None) -> Report:
    try:
        report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise AnnotationFileError(f"{path}: not a veil.detections/1 document ({exc})") from exc
    made, given = report.media, media
    if given is not None and (made.type, made.width, made.height) != (given.type, given.width, given.height):
        raise SizeMismatchError(
            f"{path}: made for a {made.width}x{made.height} {_WORDS[made.type]}, "
            f"but the {_WORDS[given.type]} is {given.width}x{given.height}"
        )
    return report


def run_detectors(
    anonymizer: Anonymizer,
    media: Mapping[str, tuple[Path, MediaInfo]],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Report]:
    """Runs the anonymizer's detectors over every file, writing nothing: photos as `veil detect` runs
    them, videos through the video pipeline (detection on key frames, tracking between).
    `progress(done, total)` counts a photo as one and a video as its frames, so a long video moves the bar.

    Raises:
        MediaError: a file cannot be read.
    """
    sizes = {
        name: (info.frame_count or 1) if info.type == "video" else 1 for name, (_, info) in media.items()
    }
    total, done = sum(sizes.values()), 0
    found: dict[str, Report] = {}
    for name, (path, _) in media.items():
        on_frame = None if progress is None else _frame_progress(progress, done, sizes[name], total)
        found[name] = anonymizer.process_file(path, None, on_frame)
        done += sizes[name]
        if progress is not None:
            progress(done, total)
    return found


def _frame_progress(
    progress: Callable[[int, int], None], start: int, size: int, total: int
) -> Callable[[int, int | None], None]:
    """A video's frame progress as part of the whole run's (a declared frame count may be short)."""
    return lambda frames, _: progress(start + min(frames, size), total)
