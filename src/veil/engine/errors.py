"""Every error Veil raises on purpose, each with a message for a person.

VeilError
├── MediaError                 the input file cannot be used
│   ├── UnsupportedMediaError  not a photo or video Veil handles (skipped, not failed)
│   ├── CorruptMediaError      truncated, damaged, empty or without a video stream
│   └── MediaTooLargeError     over the pixel limit (decompression bomb)
├── OutputError                the output cannot be written where asked
├── SizeMismatchError          given boxes were made for media of another size
└── ModelError                 a detector cannot be loaded or run

An error about one input file starts with its name ("a.jpg: the file is empty"); a batch, which shows each
outcome next to the file's path, keeps only the reason.
"""

from __future__ import annotations

__all__ = [
    "CorruptMediaError",
    "MediaError",
    "MediaTooLargeError",
    "ModelError",
    "OutputError",
    "SizeMismatchError",
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
    """Boxes to render were made for media of another size than the file given."""


class ModelError(VeilError):
    """A detector cannot be loaded or run."""
