"""Media types come from the content, never the name; properties come from headers, never from decoding;
what no worker could process (too many pixels, no video stream, a file cut short) is refused from them."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image, ImageFile, WebPImagePlugin

from tests.engine.video_factory import make_audio_only, make_video
from tests.photo_factory import damaged_pixels_png, declaring, photo_bytes, png_bomb
from veil.core.errors import UnprocessableMediaError, UnsupportedMediaTypeError
from veil.core.probing.content import SNIFF_BYTES, inspect_upload, media_properties, sniff_media_type

image_bytes = photo_bytes
PHOTO_FORMATS = [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("BMP", "image/bmp"),
                 ("TIFF", "image/tiff")]  # fmt: skip


def stored(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    """`data` written to a file with a name that says nothing, and its type as sniffed."""
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path, sniff_media_type(data[:SNIFF_BYTES])


@pytest.mark.parametrize(("image_format", "media_type"), PHOTO_FORMATS)
def test_photos_are_typed_and_measured(tmp_path: Path, image_format: str, media_type: str) -> None:
    data = image_bytes(image_format)
    path = tmp_path / "upload.bin"  # the name says nothing
    path.write_bytes(data)

    assert sniff_media_type(data[:SNIFF_BYTES]) == media_type
    assert media_properties(path, media_type) == {"size": len(data), "width": 64, "height": 48}
    assert inspect_upload(path, media_type) == {"size": len(data), "width": 64, "height": 48}


def test_a_photo_turned_by_exif_reports_the_size_it_is_shown_at(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    path = tmp_path / "portrait.jpg"
    path.write_bytes(image_bytes("JPEG", 64, 48, exif=exif.tobytes()))
    properties = inspect_upload(path, "image/jpeg")

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
    properties = inspect_upload(path, media_type)
    assert properties == media_properties(path, media_type)
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


@pytest.mark.parametrize("head", [b'{"schema": "veil.detections/1"', b' \r\n\t{"frames": []'])
def test_a_json_object_is_typed_as_a_render_document(head: bytes) -> None:
    """`inspect_upload` then checks it whole (tests/server/test_tasks.py)."""
    assert sniff_media_type(head) == "application/json"


def test_text_cut_inside_a_character_is_still_text() -> None:
    head = ("é" * SNIFF_BYTES).encode()[: SNIFF_BYTES - 1]  # ends with half of a two-byte character

    with pytest.raises(UnsupportedMediaTypeError, match="The content is text"):
        sniff_media_type(head)


@pytest.mark.parametrize(
    ("media_type", "content"),
    [("image/jpeg", b"\xff\xd8\xff\xe0" + bytes(100)), ("video/mp4", b"\0\0\0\x18ftypisom" + bytes(100))],
)
def test_a_file_with_unreadable_headers_is_refused_saying_so(
    tmp_path: Path, media_type: str, content: bytes
) -> None:
    path = tmp_path / "broken"
    path.write_bytes(content)

    with pytest.raises(UnprocessableMediaError, match=r"cannot be read.*damaged or cut short"):
        inspect_upload(path, media_type)
    # A file Veil wrote itself is not refused: it reports what it can, its size.
    assert media_properties(path, media_type) == {"size": len(content)}


@pytest.mark.parametrize(
    ("image_format", "save_args"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("BMP", {}),
        ("TIFF", {}),
        ("WEBP", {"lossless": False}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"exif": Image.Exif().tobytes()}),  # the extended format (VP8X chunk first)
    ],
)
def test_a_photo_declaring_too_many_pixels_is_refused_from_its_header(
    tmp_path: Path, image_format: str, save_args: dict[str, Any]
) -> None:
    path, media_type = stored(tmp_path, declaring(image_format, 12_000, 12_000, **save_args))

    with pytest.raises(UnprocessableMediaError, match=r"12000x12000 pixels \(144,000,000\), over the limit"):
        inspect_upload(path, media_type)


def test_a_real_png_bomb_is_refused_without_decoding_it(tmp_path: Path) -> None:
    path, media_type = stored(tmp_path, png_bomb(12_000))

    with pytest.raises(UnprocessableMediaError, match="12000x12000"):
        inspect_upload(path, media_type)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "TIFF"])
def test_a_photo_over_pillows_warning_size_but_under_the_limit_is_read_from_its_header(
    tmp_path: Path, image_format: str
) -> None:
    """Pillow warns (an error under this suite's warnings filter) above 89,478,485 pixels; the limit: 10^8."""
    path, media_type = stored(tmp_path, declaring(image_format, 10_000, 9_000))

    assert inspect_upload(path, media_type) == {"size": path.stat().st_size, "width": 10_000, "height": 9_000}


def with_metadata(image_format: str, size: int) -> bytes:
    """A small photo carrying `size` bytes of metadata before its picture data: a private PNG chunk, or
    JPEG application segments (64 KiB at most each)."""
    data = photo_bytes(image_format)
    if image_format == "PNG":
        chunk = b"prIv" + bytes(size)
        return data[:33] + struct.pack(">I", size) + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]
    segment = b"\xff\xe5" + struct.pack(">H", 65535) + bytes(65533)
    return data[:2] + segment * (size // 65535) + data[2:]


def test_exif_entries_pointing_past_their_data_are_skipped_without_a_warning_each(tmp_path: Path) -> None:
    """GIVEN a PNG whose EXIF holds 500 entries that each point past the end of the EXIF data
    WHEN its upload is inspected (warnings are errors in the tests)
    THEN it is accepted with its size, and Pillow's warning per entry never reaches the server's log."""
    entries = b"".join(struct.pack("<HHII", 0x100 + index, 4, 100, 0xFFFFFF00) for index in range(500))
    exif = b"II*\0" + struct.pack("<IH", 8, 500) + entries + bytes(4)
    png = photo_bytes("PNG", 8, 6)
    body = b"eXIf" + exif
    chunk = struct.pack(">I", len(exif)) + body + struct.pack(">I", zlib.crc32(body))
    path = tmp_path / "exif.png"
    path.write_bytes(png[:33] + chunk + png[33:])  # after the signature and IHDR

    assert inspect_upload(path, "image/png") == {"size": path.stat().st_size, "width": 8, "height": 6}


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_a_photo_with_more_metadata_than_a_photo_needs_is_refused_from_its_header(
    tmp_path: Path, image_format: str
) -> None:
    """GIVEN a small photo carrying 40 MB of metadata before its picture data (Pillow reads it whole as it
        opens the file: a 300 MB PNG chunk cost the API 570 MB)
    WHEN its upload is inspected, in a process of its own
    THEN it is refused saying why, and that process's peak grows by less than the metadata."""
    path, media_type = stored(tmp_path, with_metadata(image_format, 40_000_000))

    with pytest.raises(UnprocessableMediaError, match="more than 16 MiB of metadata before its picture data"):
        inspect_upload(path, media_type)
    assert _peak_growth_mib(path, f"inspect_upload(path, {media_type!r})") < 20


def striped_tiff(width: int, height: int, strips: int) -> bytes:
    """A grey 8-bit TIFF whose first page declares `strips` strips of one byte each (all but the first
    empty), written as any TIFF writer lays out its tags: the strip tables after the directory."""
    tables_at = 8 + 2 + 6 * 12 + 4
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1),
               (273, 4, strips, tables_at), (279, 4, strips, tables_at + 4 * strips)]  # fmt: skip
    header = b"II*\0" + struct.pack("<IH", 8, len(entries))
    directory = b"".join(struct.pack("<HHII", *entry) for entry in entries) + bytes(4)
    pixel_at = tables_at + 8 * strips
    counts = struct.pack("<I", 1) + bytes(4 * (strips - 1))
    return header + directory + struct.pack(f"<{strips}I", *[pixel_at] * strips) + counts + b"\x80"


def test_a_tiff_declaring_more_strips_than_rows_is_refused_from_its_header(tmp_path: Path) -> None:
    # Pillow reads every strip's offset as an object: 5,000,000 of them cost 3 s and 170 MB per upload.
    path, media_type = stored(tmp_path, striped_tiff(1, 1, strips=100_000))

    with pytest.raises(UnprocessableMediaError, match=r"declares 100,000 strips or tiles for a 1x1 picture"):
        inspect_upload(path, media_type)
    # One strip per row is the most a page can have, and is accepted.
    path, media_type = stored(tmp_path, striped_tiff(1, 300, strips=300))
    assert inspect_upload(path, media_type)["height"] == 300


@pytest.mark.parametrize(
    ("image_format", "media_type", "turned"),
    [
        ("JPEG", "image/jpeg", True),
        ("PNG", "image/png", True),
        ("PNG", "image/png", False),
        ("WEBP", "image/webp", True),
        ("WEBP", "image/webp", False),
        ("TIFF", "image/tiff", True),
        ("BMP", "image/bmp", False),
    ],
)
def test_no_pixel_is_decoded_to_read_a_photo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_format: str, media_type: str, turned: bool
) -> None:
    """BMP holds no EXIF; a PNG without EXIF before its pixels is where Pillow's getexif() decodes them."""

    def refuse(*args: object) -> None:
        raise AssertionError("pixels decoded, or a WebP handed to Pillow")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "_open", refuse)
    path = tmp_path / "photo"
    path.write_bytes(image_bytes(image_format, 64, 48, **({"exif": _turned_exif()} if turned else {})))

    properties = inspect_upload(path, media_type)

    assert (properties["width"], properties["height"]) == ((48, 64) if turned else (64, 48))


def _turned_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter
    return exif.tobytes()


@pytest.mark.parametrize(("image_format", "media_type"), PHOTO_FORMATS)
def test_a_photo_cut_short_is_refused_saying_so(tmp_path: Path, image_format: str, media_type: str) -> None:
    data = image_bytes(image_format, 200, 150)
    path = tmp_path / "photo"
    path.write_bytes(data[: len(data) * 3 // 5])

    with pytest.raises(UnprocessableMediaError, match="The photo is cut short"):
        inspect_upload(path, media_type)


@pytest.mark.parametrize(
    ("image_format", "media_type", "after"),
    [
        ("JPEG", "image/jpeg", bytes(range(256)) * 400),  # a phone's motion photo: a video after the picture
        ("PNG", "image/png", b"\0" * 100_000),
    ],
)
def test_data_after_a_whole_photo_is_no_reason_to_refuse_it(
    tmp_path: Path, image_format: str, media_type: str, after: bytes
) -> None:
    path = tmp_path / "photo"
    path.write_bytes(image_bytes(image_format) + after)

    assert inspect_upload(path, media_type)["width"] == 64


def test_damaged_picture_data_behind_whole_headers_is_left_to_the_worker(tmp_path: Path) -> None:
    """Only decoding tells, and the API never decodes: the task that reads the photo fails with the reason."""
    path, media_type = stored(tmp_path, damaged_pixels_png())

    assert inspect_upload(path, media_type) == {"size": path.stat().st_size, "width": 64, "height": 48}


@pytest.mark.parametrize(
    ("image_format", "save_args"),
    [("PNG", {}), ("WEBP", {}), ("TIFF", {})],
)
def test_an_animated_or_multi_page_photo_is_refused(
    tmp_path: Path, image_format: str, save_args: dict[str, Any]
) -> None:
    second = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    path, media_type = stored(
        tmp_path, image_bytes(image_format, save_all=True, append_images=[second], **save_args)
    )

    with pytest.raises(UnprocessableMediaError, match="animated or has several pages"):
        inspect_upload(path, media_type)


def test_a_multi_picture_jpeg_counts_as_one_photo(tmp_path: Path) -> None:
    """MPO (phone cameras): the engine keeps the first picture and drops the others on purpose."""
    second = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    path, media_type = stored(tmp_path, image_bytes("MPO", save_all=True, append_images=[second]))

    assert inspect_upload(path, media_type)["width"] == 64


def faststart(clip: Path) -> Path:
    """The clip remuxed with its index (moov) first, as streaming services write MP4."""
    out = clip.with_name(f"faststart-{clip.name}")
    with av.open(str(clip)) as source, av.open(str(out), "w", options={"movflags": "+faststart"}) as target:
        streams = {stream.index: target.add_stream_from_template(stream) for stream in source.streams}
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                target.mux(packet)
    return out


@pytest.mark.parametrize(
    ("name", "codec", "index_first", "refusal"),
    [
        ("clip.mp4", "libx264", True, "The video is cut short: it ends inside its last packet"),
        ("clip.mp4", "libx264", False, r"The video cannot be read: .* damaged or cut short"),
        (
            "clip.mkv",
            "libx264",
            False,
            r"The video is cut short: it declares 4.0 s, the file holds [12].\d s",
        ),
        ("clip.webm", "libvpx-vp9", False, r"The video is cut short: it declares 4.0 s"),
        ("clip.avi", "mpeg4", False, "The video is cut short"),
    ],
)
def test_a_video_cut_short_is_refused_saying_so(
    tmp_path: Path, name: str, codec: str, index_first: bool, refusal: str
) -> None:
    clip = make_video(tmp_path / name, frames=100, audio=None, codec=codec).path
    whole = (faststart(clip) if index_first else clip).read_bytes()
    path, media_type = stored(tmp_path, whole[: len(whole) // 2])

    with pytest.raises(UnprocessableMediaError, match=refusal):
        inspect_upload(path, media_type)


def test_a_video_cut_in_its_last_packet_is_refused(tmp_path: Path) -> None:
    clip = faststart(make_video(tmp_path / "clip.mp4", frames=100).path)
    path, media_type = stored(tmp_path, clip.read_bytes()[:-100])

    with pytest.raises(UnprocessableMediaError, match="ends inside its last packet"):
        inspect_upload(path, media_type)


@pytest.mark.parametrize(
    ("name", "container_format", "codec", "cover", "holds"),
    [
        ("sound.m4a", "mp4", "aac", False, "audio only"),
        ("sound.mka", "matroska", "aac", False, "audio only"),
        ("sound.webm", "webm", "libopus", False, "audio only"),
        ("song.m4a", "mp4", "aac", True, "only a still cover picture"),
    ],
)
def test_a_file_with_no_video_stream_is_refused_saying_what_it_holds(
    tmp_path: Path, name: str, container_format: str, codec: str, cover: bool, holds: str
) -> None:
    made = make_audio_only(tmp_path / name, container_format, codec, cover)
    path, media_type = stored(tmp_path, made.read_bytes())
    assert media_type.startswith("video/")  # its container is a video's

    with pytest.raises(UnprocessableMediaError, match=f"The file holds {holds} and no video stream"):
        inspect_upload(path, media_type)


def test_a_video_with_frames_over_the_pixel_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("veil.core.probing.content.MAX_PIXELS", 320 * 240 - 1)
    clip = make_video(tmp_path / "clip.mp4", frames=5, audio=None).path

    with pytest.raises(
        UnprocessableMediaError, match=r"frames are 320x240 pixels \(76,800\), over the limit"
    ):
        inspect_upload(clip, "video/mp4")


# How much the peak memory (VmHWM) of a process grows while it runs `READ` on the file named by argv[1].
_PEAK_GROWTH_MIB = """
import sys
from pathlib import Path
from veil.core.errors import UnprocessableMediaError
from veil.core.probing.content import inspect_upload
from veil.core.probing.video_container import RefusedVideoError, check_video_complete, read_video_header
def kib(field):
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])
path = Path(sys.argv[1])
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the resident size
before = kib("VmRSS")
try:
    READ
except (UnprocessableMediaError, RefusedVideoError):
    pass
print((kib("VmHWM") - before) // 1024)
"""


def _peak_growth_mib(path: Path, read: str) -> int:
    code = _PEAK_GROWTH_MIB.replace("READ", read)
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return int(run.stdout)


def test_reading_a_video_decodes_no_frame(tmp_path: Path) -> None:
    """GIVEN a short H.264 clip of 4,000 x 4,000 frames (24 MB each once decoded)
    WHEN its upload is inspected, in a process of its own
    THEN that process's peak grows by less than one decoded frame (FFmpeg's probing would decode one)."""
    side = 4000
    path = tmp_path / "large.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width = stream.height = side
        stream.pix_fmt, stream.time_base = "yuv420p", Fraction(1, 25)
        frame = av.VideoFrame.from_ndarray(np.zeros((side, side, 3), np.uint8), format="bgr24")
        for index in range(4):
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())

    growth_mib = _peak_growth_mib(path, "read_video_header(path, 10**9); check_video_complete(path)")

    assert growth_mib < side * side * 1.5 / 2**20 * 0.8


def _declaring_samples(path: Path, samples: int) -> None:
    """Rewrites an MP4's sample tables to declare `samples` samples of 100 bytes each, in its few KB."""
    data = bytearray(path.read_bytes())
    sizes = data.find(b"stsz")  # version and flags, the size of every sample, how many samples
    data[sizes + 8 : sizes + 16] = struct.pack(">II", 100, samples)
    times = data.find(b"stts")  # version and flags, entry count, then the first entry's sample count
    data[times + 12 : times + 16] = struct.pack(">I", samples)
    path.write_bytes(bytes(data))


def test_a_video_declaring_millions_of_samples_costs_the_api_nothing(tmp_path: Path) -> None:
    """GIVEN a 3 KB MP4 whose tables declare 50 million samples (FFmpeg indexes them all as it opens the
        file: +600 MB and a second of CPU in the process that opens it)
    WHEN its upload is inspected
    THEN it is refused, and the inspecting process's peak memory grows by a few MiB at most."""
    path = tmp_path / "bomb.mp4"
    make_video(path, frames=10, audio=None)
    _declaring_samples(path, 50_000_000)

    with pytest.raises(UnprocessableMediaError, match=r"cut short|declares more"):
        inspect_upload(path, "video/mp4")
    assert _peak_growth_mib(path, 'inspect_upload(path, "video/mp4")') < 20
