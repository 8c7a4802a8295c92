"""What a photo's headers say, read without decoding a pixel: its size, how it is turned, whether it holds
more than one picture, and whether the file holds all the picture data its structure announces.

Pillow's `Image.open` reads headers only for JPEG, PNG, BMP and TIFF, but two of its calls do more: a PNG's
`getexif()` decodes the whole picture to look for EXIF after the pixel data, and opening a WebP reads the
whole file and allocates its canvas. So the size is read here from each format's own header before Pillow
sees the file, WebP never reaches Pillow, and EXIF is read only from what the header holds. Pillow's
decompression-bomb warning is not ours to raise (the caller checks its own limit), and its error above twice
its limit is a refusal like any other.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from veil.core.errors import UnprocessableMediaError

__all__ = ["PhotoHeader", "read_photo_header"]

_EXIF_ORIENTATION = 0x0112
# EXIF orientations that turn the picture a quarter, so a viewer shows it with width and height swapped.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of every whole PNG
_JPEG_END = b"\xff\xd9"  # EOI; in entropy-coded data a 0xFF byte is always followed by 0x00 or a restart
# JPEG frame headers (SOF0-SOF15 but DHT, JPG and DAC, which share the range): they carry the size.
_JPEG_FRAME_CODES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_START_OF_SCAN = 0xDA
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # markers with no length field
_MAX_JPEG_SEGMENTS = 10_000  # real photos have tens before the first scan; this bounds a crafted file
_MAX_WEBP_CHUNKS = 64  # a still WebP has a handful (VP8X, ICCP, VP8/VP8L, EXIF, XMP)
_WEBP_ANIMATED = 0x02  # VP8X flag
_MAX_EXIF_BYTES = 1024 * 1024  # JPEG caps EXIF at 64 KiB; a larger WebP EXIF chunk is not read
_BIGTIFF = 43
_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_SAMPLES = 256, 257, 277
_TIFF_PIECE_OFFSETS = (273, 324)  # StripOffsets, TileOffsets
_MAX_TIFF_PLANES = 8  # samples per pixel that a page may store apart, each in its own strips or tiles
_TIFF_NUMBERS = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG and BigTIFF's LONG8, as struct formats
_MAX_TIFF_TAGS = 4096
_MAX_HEADER_BYTES = 16 * 1024**2  # metadata before the picture data: Pillow holds it in memory as it opens
_MAX_PNG_CHUNKS = 10_000  # a PNG has a handful before IDAT (sRGB, pHYs, iCCP, eXIf, text)
_TAIL = 64 * 1024
_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class PhotoHeader:
    """A photo as its headers describe it.

    Attributes:
        width, height: pixels as shown, after the EXIF orientation.
        several_pictures: an animated or multi-page file (MPO counts as one picture: the engine keeps its
            first and drops the others on purpose).
    """

    width: int
    height: int
    several_pictures: bool


def read_photo_header(path: Path, media_type: str, max_pixels: int, *, check_complete: bool) -> PhotoHeader:
    """The photo's size, from the format's own header before Pillow opens it, and whether it holds
    several pictures; with `check_complete`, also that the file holds all the picture data its structure
    announces (checked without decoding it).

    Raises:
        UnprocessableMediaError: more than `max_pixels` pixels (the message names the size), a header
            that cannot be read, or (with `check_complete`) a file that ends before its picture data does.
    """
    with path.open("rb") as file, _damaged_on_parse_errors():
        width, height = _CODED_SIZE[media_type](file)
        _check_pixels(width, height, max_pixels)
        orientation, several = _webp_details(file) if media_type == "image/webp" else _pillow_details(path)
        if check_complete and not _COMPLETE[media_type](file, file.seek(0, 2)):
            raise UnprocessableMediaError(
                "The photo is cut short: the file ends before its picture data does (an interrupted upload "
                "or copy?). Send the whole file."
            )
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return PhotoHeader(width, height, several)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UnprocessableMediaError(
            f"The photo is {width}x{height} pixels ({width * height:,}), over the limit of {max_pixels:,} "
            "pixels; send a smaller one."
        )


def _damaged(reason: str) -> UnprocessableMediaError:
    return UnprocessableMediaError(f"The photo cannot be read: {reason}. It may be damaged or cut short.")


@contextmanager
def _damaged_on_parse_errors() -> Iterator[None]:
    """What Pillow's EXIF and TIFF tag readers raise on damaged data, as the engine catches it, refused."""
    try:
        yield
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error) as exc:
        raise _damaged(str(exc) or type(exc).__name__) from exc


def _read(file: BinaryIO, offset: int, size: int) -> bytes:
    file.seek(offset)
    data = file.read(size)
    if len(data) < size:
        raise _damaged("the file ends inside its header")
    return data


def _png_size(file: BinaryIO) -> tuple[int, int]:
    width, height = struct.unpack(">II", _read(file, 16, 8))  # IHDR, always the first chunk
    _check_png_metadata(file)
    return width, height


def _check_png_metadata(file: BinaryIO) -> None:
    """Refuses a PNG with more than `_MAX_HEADER_BYTES` of chunks before its picture data (IDAT): Pillow
    reads each of them whole as it opens the file, an unknown chunk of 300 MB costing the API 570 MB."""
    offset = 8
    for _ in range(_MAX_PNG_CHUNKS):
        length, kind = struct.unpack(">I4s", _read(file, offset, 8))
        if kind == b"IDAT":
            return
        offset += 12 + length  # length and type, the data, its CRC
        _check_header_bytes(offset)
    raise _damaged(f"the PNG has more than {_MAX_PNG_CHUNKS:,} chunks before its picture data")


def _check_header_bytes(offset: int) -> None:
    if offset > _MAX_HEADER_BYTES:
        raise UnprocessableMediaError(
            f"The photo holds more than {_MAX_HEADER_BYTES // 1024**2} MiB of metadata before its picture "
            "data; remove it (for one, save the photo again without extra metadata) and send it again."
        )


def _bmp_size(file: BinaryIO) -> tuple[int, int]:
    if struct.unpack("<I", _read(file, 14, 4))[0] == 12:  # BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", _read(file, 18, 4))
    else:
        width, height = struct.unpack("<ii", _read(file, 18, 8))
    return abs(width), abs(height)  # a negative height means rows stored top-down


def _webp_size(file: BinaryIO) -> tuple[int, int]:
    kind, data = _read(file, 12, 4), _read(file, 20, 10)
    if kind == b"VP8X":  # canvas size minus one, 24 bits each
        return int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1
    if kind == b"VP8 ":  # lossy: a 3-byte frame tag and a start code, then 14-bit sizes
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L":  # lossless: a signature byte, then 14-bit sizes minus one
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise _damaged(f"the WebP has an unknown first chunk {kind!r}")


def _jpeg_size(file: BinaryIO) -> tuple[int, int]:
    size, _ = _jpeg_layout(file)
    return size


def _jpeg_layout(file: BinaryIO) -> tuple[tuple[int, int], int]:
    """The size in the frame header, and where the first scan's data starts."""
    file.seek(2)  # after SOI
    size: tuple[int, int] | None = None
    for _ in range(_MAX_JPEG_SEGMENTS):
        code = _jpeg_marker(file)
        if code in _JPEG_STANDALONE:
            continue
        (length,) = struct.unpack(">H", _read(file, file.tell(), 2))
        data_at = file.tell()
        _check_header_bytes(data_at + length)
        if code in _JPEG_FRAME_CODES:  # sample precision, then height and width
            height, width = struct.unpack(">HH", _read(file, data_at + 1, 4))
            size = (width, height)
        if code == _JPEG_START_OF_SCAN:
            if size is None:
                raise _damaged("the JPEG has no frame header before its picture data")
            return size, data_at + length - 2
        file.seek(data_at + length - 2)
    raise _damaged(f"the JPEG has more than {_MAX_JPEG_SEGMENTS:,} header segments")


def _jpeg_marker(file: BinaryIO) -> int:
    """The code of the marker at the file's position (fill bytes 0xFF before it are skipped)."""
    if file.read(1) != b"\xff":
        raise _damaged("the JPEG's header segments are broken")
    code = b"\xff"
    while code == b"\xff":
        code = file.read(1)
    if not code:
        raise _damaged("the file ends inside its header")
    return code[0]


def _tiff_size(file: BinaryIO) -> tuple[int, int]:
    """ImageWidth and ImageLength of the first page (classic TIFF or BigTIFF), once its count of strips or
    tiles is one such a page can have: Pillow reads them all, a Python object each, so a tiny picture
    declaring millions costs the API seconds and hundreds of MB."""
    entries = _tiff_entries(file)
    if _TIFF_WIDTH not in entries or _TIFF_LENGTH not in entries:
        raise _damaged("the TIFF's first page has no width or height")
    width, height = entries[_TIFF_WIDTH][1], entries[_TIFF_LENGTH][1]
    pieces = max(entries.get(tag, (0, 0))[0] for tag in _TIFF_PIECE_OFFSETS)
    planes = min(entries.get(_TIFF_SAMPLES, (1, 1))[1], _MAX_TIFF_PLANES)
    # A strip holds at least one row, a tile at least 16 x 16 pixels (TIFF 6.0), per plane stored apart.
    most = max(height, -(-width // 16) * -(-height // 16), 1) * max(planes, 1)
    if pieces > most:
        raise _damaged(f"the TIFF declares {pieces:,} strips or tiles for a {width}x{height} picture")
    return width, height


def _tiff_entries(file: BinaryIO) -> dict[int, tuple[int, int]]:
    """The first page's tags as (count, first value), the value read for SHORT, LONG and LONG8 only."""
    order = "<" if _read(file, 0, 2) == b"II" else ">"
    if struct.unpack(f"{order}H", _read(file, 2, 2))[0] == _BIGTIFF:
        (directory,) = struct.unpack(f"{order}Q", _read(file, 8, 8))
        (count,) = struct.unpack(f"{order}Q", _read(file, directory, 8))
        first, entry_size, count_format = directory + 8, 20, f"{order}Q"
    else:
        (directory,) = struct.unpack(f"{order}I", _read(file, 4, 4))
        (count,) = struct.unpack(f"{order}H", _read(file, directory, 2))
        first, entry_size, count_format = directory + 2, 12, f"{order}I"
    value_at = 4 + struct.calcsize(count_format)
    entries: dict[int, tuple[int, int]] = {}
    for index in range(min(count, _MAX_TIFF_TAGS)):
        entry = _read(file, first + index * entry_size, entry_size)
        tag, kind = struct.unpack(f"{order}HH", entry[:4])
        (values,) = struct.unpack(count_format, entry[4:value_at])
        number = _TIFF_NUMBERS.get(kind)
        value = struct.unpack_from(f"{order}{number}", entry, value_at)[0] if number else 0
        entries[tag] = (values, value)
    return entries


_CODED_SIZE = {
    "image/png": _png_size,
    "image/bmp": _bmp_size,
    "image/webp": _webp_size,
    "image/jpeg": _jpeg_size,
    "image/tiff": _tiff_size,
}


def _pillow_open(source: Path | BinaryIO) -> Image.Image:
    """Pillow's lazy open: the header is parsed, no pixel decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(source)
    except Image.DecompressionBombError as exc:
        raise UnprocessableMediaError(f"The photo has too many pixels to read safely: {exc}") from exc
    except Exception as exc:  # Pillow's header parsers raise many types on damaged files
        raise _damaged(str(exc) or type(exc).__name__) from exc


def _pillow_details(path: Path) -> tuple[int | None, bool]:
    """EXIF orientation and whether there is more than one picture, from Pillow's header parsers (its
    `size` is not used: for a TIFF it is already turned by the orientation)."""
    with _pillow_open(path) as image, _quiet_exif():
        # The base class reads EXIF from the header; PngImageFile's own getexif() decodes every pixel.
        orientation = Image.Image.getexif(image).get(_EXIF_ORIENTATION)
        return orientation, image.format != "MPO" and bool(getattr(image, "is_animated", False))


@contextmanager
def _quiet_exif() -> Iterator[None]:
    """Pillow warns once per EXIF entry that points past its data: an upload with 65,535 of them would
    write as many lines to the server's log. Such entries are skipped either way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _webp_details(file: BinaryIO) -> tuple[int | None, bool]:
    """EXIF orientation and the animation flag, from the chunks of the RIFF container."""
    orientation, animated, offset = None, False, 12
    for _ in range(_MAX_WEBP_CHUNKS):
        file.seek(offset)
        header = file.read(8)
        if len(header) < 8:
            break
        kind, length = header[:4], struct.unpack("<I", header[4:])[0]
        if kind == b"VP8X":
            animated = bool(_read(file, offset + 8, 1)[0] & _WEBP_ANIMATED)
        elif kind == b"EXIF" and length <= _MAX_EXIF_BYTES:
            exif = Image.Exif()
            with _quiet_exif():
                exif.load(_read(file, offset + 8, length))
            orientation = exif.get(_EXIF_ORIENTATION)
        offset += 8 + length + (length & 1)  # chunks are padded to an even size
    return orientation, animated


def _png_complete(file: BinaryIO, size: int) -> bool:
    return _holds(file, _PNG_END, start=8, size=size)


def _jpeg_complete(file: BinaryIO, size: int) -> bool:
    """Any EOI after the first scan starts: the end of the picture, or data after it (a phone's motion-photo
    video, for one), which exists only if the picture ended."""
    _, scan_start = _jpeg_layout(file)
    return _holds(file, _JPEG_END, start=scan_start, size=size)


def _webp_complete(file: BinaryIO, size: int) -> bool:
    (riff_size,) = struct.unpack("<I", _read(file, 4, 4))
    return size >= 8 + int(riff_size)


def _bmp_complete(file: BinaryIO, size: int) -> bool:
    """Uncompressed rows end where the header says; compressed (RLE, JPEG, PNG) bitmaps are not measured."""
    (pixels_at,) = struct.unpack("<I", _read(file, 10, 4))
    if struct.unpack("<I", _read(file, 14, 4))[0] == 12:
        compression, (bits,) = 0, struct.unpack("<H", _read(file, 24, 2))
    else:
        bits, compression = struct.unpack("<HI", _read(file, 28, 6))
    if compression not in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
        return True
    width, height = _bmp_size(file)
    return size >= int(pixels_at) + (int(bits) * width + 31) // 32 * 4 * height


def _tiff_complete(file: BinaryIO, size: int) -> bool:
    """Every strip or tile of the first page lies within the file."""
    with _pillow_open(file) as image:
        tags = getattr(image, "tag_v2", {})
        offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
    if not offsets or not counts:
        return True
    ends = [
        int(offset) + int(count) for offset, count in zip(_values(offsets), _values(counts), strict=False)
    ]
    return max(ends) <= size


def _values(tag: object) -> tuple[int, ...]:
    """A TIFF tag's numbers: Pillow gives a tuple, or a number alone when the tag holds one."""
    return tuple(tag) if isinstance(tag, tuple) else (int(tag),)  # type: ignore[call-overload]


_COMPLETE = {
    "image/png": _png_complete,
    "image/jpeg": _jpeg_complete,
    "image/webp": _webp_complete,
    "image/bmp": _bmp_complete,
    "image/tiff": _tiff_complete,
}


def _holds(file: BinaryIO, marker: bytes, *, start: int, size: int) -> bool:
    """Whether `marker` occurs after `start`: the file's tail is searched first (where it is in a whole
    file), then the rest, a block at a time so memory stays flat."""
    tail = max(start, size - _TAIL)
    file.seek(tail)
    if marker in file.read():
        return True
    stop = min(size, tail + len(marker) - 1)  # so a marker across the tail's start is found too
    position, carry = start, b""
    file.seek(start)
    while position < stop:
        block = carry + file.read(min(_BLOCK, stop - position))
        if marker in block:
            return True
        position = file.tell()
        carry = block[-(len(marker) - 1) :]
    return False
