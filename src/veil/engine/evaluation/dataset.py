"""What `veil eval` scores: the labelled photos, their labels read with the annotation importers, and Veil's
detections of them, read from `veil detect`'s files or found by running the detectors.

Photos are named by their relative POSIX path under the images folder ("a.jpg", "street/b.jpg"), as the
labels name them and as `veil detect IMAGES -o DIR` names its files (`DIR/street/b.jpg.json`).
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
from veil.engine.anonymizer import Anonymizer
from veil.engine.errors import AnnotationFileError, MediaError, SizeMismatchError
from veil.engine.media.kinds import media_kind
from veil.engine.report import MediaInfo, Report

__all__ = [
    "find_photos",
    "photo_info",
    "read_detection_folder",
    "read_detections",
    "read_labels",
    "run_detectors",
]

# EXIF orientations that turn the photo a quarter: its upright width is the stored height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


def find_photos(images_dir: Path) -> dict[str, Path]:
    """Every photo under `images_dir` (hidden files and folders skipped) by relative POSIX path, sorted.

    Raises:
        MediaError: the folder does not exist or holds no photo.
    """
    if not images_dir.is_dir():
        raise MediaError(f"{images_dir}: no such folder of images")
    photos: dict[str, Path] = {}
    for folder, dirs, files in os.walk(images_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if not name.startswith(".") and media_kind(path) == "image":
                photos[path.relative_to(images_dir).as_posix()] = path
    if not photos:
        raise MediaError(f"{images_dir}: no photos in this folder (JPEG, PNG, WebP, BMP or TIFF)")
    return photos


def photo_info(path: Path) -> MediaInfo:
    """The upright size of a photo (EXIF orientation applied), read from its header alone.

    Raises:
        MediaError: the file is not an image Pillow reads.
    """
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
    """The labelled boxes of every photo in `media` (name -> size), read by the importer of `format_name`.

    `labels` is a zip or a bare annotation file as CVAT exports them, or a folder holding that layout
    (its files other than photos are zipped into a temporary file for the importer).

    Raises:
        AnnotationError: no such file, or the importer's errors (another format, unknown labels, a photo
            the labels name that is not in `media`, boxes outside a photo).
    """
    if not labels.exists():
        raise AnnotationFileError(f"{labels}: no such labels file or folder")
    if not labels.is_dir():
        return import_annotations(labels, format_name, list(media.items()))
    with tempfile.TemporaryDirectory(prefix="veil-eval-") as tmp:
        bundle = Path(tmp) / f"{labels.name}.zip"
        _zip_folder(labels, bundle)
        return import_annotations(bundle, format_name, list(media.items()))


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and media_kind(path) is None:
                out.write(path, path.relative_to(folder).as_posix())


def read_detections(detections_dir: Path, truth: Mapping[str, Report]) -> dict[str, Report | None]:
    """Each photo's `veil.detections/1` file `<detections_dir>/<name>.json`; None where there is none.

    Raises:
        AnnotationFileError: a file is not a veil.detections/1 document.
        SizeMismatchError: a file was made for a photo of another size.
    """
    found: dict[str, Report | None] = {}
    for name, labelled in truth.items():
        path = detections_dir / f"{name}.json"
        found[name] = _read_report(path, labelled.media) if path.is_file() else None
    return found


def read_detection_folder(detections_dir: Path) -> dict[str, Report]:
    """Every `<name>.json` under `detections_dir` by photo name, e.g. "street/b.jpg" for `street/b.jpg.json`.

    Raises:
        AnnotationFileError: no such folder, no file in it, or a file that is no veil.detections/1 photo.
    """
    if not detections_dir.is_dir():
        raise AnnotationFileError(f"{detections_dir}: no such folder of detections")
    found: dict[str, Report] = {}
    for path in sorted(detections_dir.rglob("*.json")):
        report = _read_report(path)
        if report.media.type == "image":
            found[path.relative_to(detections_dir).as_posix().removesuffix(".json")] = report
    if not found:
        raise AnnotationFileError(
            f"{detections_dir}: no detections of photos in it (`veil detect IMAGES -o DIR` writes them)"
        )
    return found


def _read_report(path: Path, media: MediaInfo | None = None) -> Report:
    try:
        report = Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise AnnotationFileError(f"{path}: not a veil.detections/1 document ({exc})") from exc
    if media is not None and (report.media.width, report.media.height) != (media.width, media.height):
        raise SizeMismatchError(
            f"{path}: made for a {report.media.width}x{report.media.height} image, "
            f"but the photo is {media.width}x{media.height}"
        )
    return report


def run_detectors(
    anonymizer: Anonymizer,
    photos: Mapping[str, Path],
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Report]:
    """Runs the anonymizer's detectors over every photo, writing nothing; `progress(done, total)` after
    each photo.

    Raises:
        MediaError: a photo cannot be read.
    """
    found: dict[str, Report] = {}
    for done, (name, path) in enumerate(photos.items(), 1):
        found[name] = anonymizer.process_file(path, None)
        if progress is not None:
            progress(done, len(photos))
    return found
