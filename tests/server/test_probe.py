"""Media types come from the content, never the name; properties come from headers, never from decoding."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.engine.video_factory import make_video
from tests.helpers import noise_image
from veil.core.errors import UnsupportedMediaTypeError
from veil.core.probe import SNIFF_BYTES, media_properties, sniff_media_type


def image_bytes(image_format: str, width: int = 64, height: int = 48, **save_args: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(width, height)).save(buffer, format=image_format, **save_args)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_format", "media_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_photos_are_typed_and_measured(tmp_path: Path, image_format: str, media_type: str) -> None:
    data = image_bytes(image_format)
    path = tmp_path / "upload.bin"  # the name says nothing
    path.write_bytes(data)

    assert sniff_media_type(data[:SNIFF_BYTES]) == media_type
    assert media_properties(path, media_type) == {"size": len(data), "width": 64, "height": 48}


def test_a_photo_turned_by_exif_reports_the_size_it_is_shown_at(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    path = tmp_path / "portrait.jpg"
    path.write_bytes(image_bytes("JPEG", 64, 48, exif=exif.tobytes()))
    properties = media_properties(path, "image/jpeg")

    assert (properties["width"], properties["height"]) == (48, 64)


@pytest.mark.parametrize(
    ("name", "codec", "media_type", "frame_count"),
    [
        ("clip.mp4", "libx264", "video/mp4", 10),
        ("clip.mov", "libx264", "video/quicktime", 10),
        ("clip.mkv", "libx264", "video/x-matroska", None),
        ("clip.webm", "libvpx-vp9", "video/webm", None),
        ("clip.avi", "mpeg4", "video/x-msvideo", 10),
        ("clip.ts", "libx264", "video/mp2t", None),
    ],
)
def test_videos_are_typed_and_measured(
    tmp_path: Path, name: str, codec: str, media_type: str, frame_count: int | None
) -> None:
    path = make_video(tmp_path / name, frames=10, fps=25, audio=None, codec=codec).path

    assert sniff_media_type(path.read_bytes()[:SNIFF_BYTES]) == media_type
    properties = media_properties(path, media_type)
    assert properties["size"] == path.stat().st_size
    assert (properties["width"], properties["height"], properties["fps"]) == (320, 240, 25.0)
    assert properties["duration"] == pytest.approx(0.4, abs=0.05)
    assert properties.get("frame_count") == frame_count


@pytest.mark.parametrize(
    ("head", "described_as"),
    [
        (b"", "empty"),
        (b"just some text, named photo.jpg", "text"),
        (b"GIF89a\x01\x00\x01\x00", "a GIF image"),
        (b"%PDF-1.7\n", "a PDF document"),
        (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00", "a HEIF photo"),
        (b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00", "an audio file (M4A)"),
        (b"BM but not a bitmap at all, only words", "text"),
        (bytes(range(200, 256)), "binary data starting with c8 c9 ca cb cc cd ce cf"),
    ],
)
def test_unknown_content_is_refused_saying_what_it_is(head: bytes, described_as: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        sniff_media_type(head)

    assert described_as in str(caught.value)
    assert caught.value.errors == {"file": [str(caught.value)]}


def test_text_cut_inside_a_character_is_still_text() -> None:
    head = ("é" * SNIFF_BYTES).encode()[: SNIFF_BYTES - 1]  # ends with half of a two-byte character

    with pytest.raises(UnsupportedMediaTypeError, match="The content is text"):
        sniff_media_type(head)


@pytest.mark.parametrize(
    ("media_type", "content"),
    [("image/jpeg", b"\xff\xd8\xff\xe0" + bytes(100)), ("video/mp4", b"\0\0\0\x18ftypisom" + bytes(100))],
)
def test_a_corrupt_file_reports_its_size_only(tmp_path: Path, media_type: str, content: bytes) -> None:
    path = tmp_path / "broken"
    path.write_bytes(content)

    assert media_properties(path, media_type) == {"size": len(content)}
