"""Which files Veil treats as photos and which as videos, by name; readers then check the content."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "MediaKind", "media_kind"]

MediaKind = Literal["image", "video"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".m2ts",
        ".mts",
        ".wmv",
        ".flv",
        ".3gp",
    }
)


def media_kind(path: Path) -> MediaKind | None:
    """ "image" or "video" by file suffix, None for a type Veil does not handle."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None
