"""Where a dataset's images come from: photos copied as they are, video frames decoded one at a time and
written as JPEG, so a long video never sits in memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol

import cv2

from veil.engine.errors import CorruptMediaError, MediaError
from veil.engine.media.video import upright_frames

__all__ = ["ImageSource", "MediaFiles"]

JPEG_QUALITY = 90


class ImageSource(Protocol):
    """Encoded images of the frames of a dataset."""

    def images(
        self, document: str, kind: Literal["image", "video"], frames: Sequence[int]
    ) -> Iterator[tuple[int, bytes]]:
        """(frame index, encoded image) for each of `frames` (ascending) of `document`: a photo's file as
        it is (frame 0), or video frames as upright JPEG.

        Raises:
            MediaError: the media cannot be read.
        """
        ...


class MediaFiles:
    """An `ImageSource` over files on disk: document name -> path (the anonymized output, or the
    original where a key may read it)."""

    def __init__(self, paths: Mapping[str, Path], jpeg_quality: int = JPEG_QUALITY) -> None:
        self.paths = paths
        self.jpeg_quality = jpeg_quality

    def images(
        self, document: str, kind: Literal["image", "video"], frames: Sequence[int]
    ) -> Iterator[tuple[int, bytes]]:
        path = self.paths[document]
        if kind == "image":
            try:
                yield 0, path.read_bytes()
            except OSError as exc:
                raise MediaError(f"{path.name}: cannot read the file ({exc.strerror or exc})") from exc
            return
        yield from self._video_frames(path, frames)

    def _video_frames(self, path: Path, frames: Sequence[int]) -> Iterator[tuple[int, bytes]]:
        for index, upright in upright_frames(path, frames):
            ok, data = cv2.imencode(".jpg", upright, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise CorruptMediaError(f"{path.name}: frame {index} cannot be written as JPEG")
            yield index, data.tobytes()
