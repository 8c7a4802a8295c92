"""Every error Veil raises on purpose, each with a message for a person.

VeilError
├── MediaError                 the input file cannot be used
│   ├── UnsupportedMediaError  not a photo or video Veil handles (skipped, not failed)
│   ├── CorruptMediaError      truncated, damaged, empty or without a video stream
│   └── MediaTooLargeError     over the pixel limit (decompression bomb)
├── OutputError                the output cannot be written where asked
├── SizeMismatchError          given boxes were made for media of another size
├── ModelError                 a detector cannot be loaded or run
└── AnnotationError            annotations cannot be exported or imported as asked
    ├── UnknownFormatError     no such annotation format, or it cannot do what was asked (e.g. import)
    ├── AnnotationFileError    the file is not in the format named, or is damaged
    ├── AnnotationContentError boxes outside the frame, frames beyond the video, unknown labels or media
    └── UnsafeArchiveError     a zip member escaping its folder, a zip bomb, XML entities or a DTD

An error about one input file starts with its name ("a.jpg: the file is empty"); a batch, which shows each
outcome next to the file's path, keeps only the reason.
"""

from __future__ import annotations

__all__ = [
    "AnnotationContentError",
    "AnnotationError",
    "AnnotationFileError",
    "CorruptMediaError",
    "MediaError",
    "MediaTooLargeError",
    "ModelError",
    "OutputError",
    "SizeMismatchError",
    "UnknownFormatError",
    "UnsafeArchiveError",
    "UnsupportedMediaError",
    "VeilError",
]


class VeilError(Exception):
    """Base of every error Veil raises on purpose."""


class MediaError(VeilError):
    """The input file cannot be used."""


class UnsupportedMediaError(MediaError):
    """The file is not a photo or video type Veil handles."""


class CorruptMediaError(MediaError):
    """The file is empty, truncated or damaged, or holds no video stream."""


class MediaTooLargeError(MediaError):
    """The image has more pixels than allowed."""


class OutputError(VeilError):
    """The output cannot be written where asked."""


class SizeMismatchError(VeilError):
    """Boxes to render were made for media of another size, or another kind, than the file given."""


class ModelError(VeilError):
    """A detector cannot be loaded or run."""


class AnnotationError(VeilError):
    """Annotations cannot be exported or imported as asked; nothing is returned half done."""


class UnknownFormatError(AnnotationError):
    """No annotation format has this name, or the format cannot export (or import)."""


class AnnotationFileError(AnnotationError):
    """The file is not in the format named (another format, missing parts) or is damaged."""


class AnnotationContentError(AnnotationError):
    """The file reads, but what it says does not fit the media: boxes outside the frame, frames beyond the
    video, labels Veil does not know, items naming no media file."""


class UnsafeArchiveError(AnnotationError):
    """The file could harm the reader: zip members named outside their folder, a zip bomb, XML entities or
    a DTD."""
