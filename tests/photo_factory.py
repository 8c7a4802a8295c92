"""Photos whose headers say one thing and whose data another, made from small real ones in memory: a huge
declared size, a file cut short, damaged picture data behind whole headers, and a real decompression bomb.

Nothing here is stored in the repository; every file is a few kilobytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image

from tests.helpers import noise_image

__all__ = ["damaged_pixels_png", "declaring", "photo_bytes", "png_bomb"]


def photo_bytes(image_format: str, width: int = 64, height: int = 48, **save_args: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(noise_image(width, height)).save(buffer, format=image_format, **save_args)
    return buffer.getvalue()


def declaring(image_format: str, width: int, height: int, **save_args: Any) -> bytes:
    """A small photo whose header says it is `width` x `height` pixels (its data stays 64 x 48)."""
    data = bytearray(photo_bytes(image_format, **save_args))
    _PATCHERS[image_format](data, width, height)
    return bytes(data)


def png_bomb(side: int) -> bytes:
    """A valid PNG of `side` x `side` black pixels: zlib shrinks each row of zeros to a few bytes."""
    compressor = zlib.compressobj(9)
    row = b"\0" + bytes(side * 3)  # filter type 0, then the pixels
    pixels = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return _png(struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0), pixels)


def damaged_pixels_png() -> bytes:
    """A 64 x 48 PNG with whole headers and an end marker, whose compressed pixels are noise: only decoding
    tells that it is damaged."""
    return _png(struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0), bytes(range(256)) * 8)


def _png(header: bytes, pixels: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _png_size(data: bytearray, width: int, height: int) -> None:
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # Pillow checks the IHDR's CRC


def _jpeg_size(data: bytearray, width: int, height: int) -> None:
    frame = min(at for at in (data.find(b"\xff\xc0"), data.find(b"\xff\xc2")) if at >= 0)
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)


def _bmp_size(data: bytearray, width: int, height: int) -> None:
    data[18:26] = struct.pack("<ii", width, height)


def _webp_size(data: bytearray, width: int, height: int) -> None:
    kind = bytes(data[12:16])
    if kind == b"VP8X":
        data[24:30] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    elif kind == b"VP8 ":
        data[26:30] = struct.pack("<HH", width, height)
    else:  # VP8L: 14 bits each after the signature byte, the flags above them kept
        bits = int.from_bytes(data[21:25], "little") & ~((1 << 28) - 1)
        data[21:25] = (bits | (width - 1) | (height - 1) << 14).to_bytes(4, "little")


def _tiff_size(data: bytearray, width: int, height: int) -> None:
    order = "<" if data[:2] == b"II" else ">"
    (directory,) = struct.unpack_from(f"{order}I", data, 4)
    (count,) = struct.unpack_from(f"{order}H", data, directory)
    for at in range(directory + 2, directory + 2 + 12 * count, 12):
        (tag,) = struct.unpack_from(f"{order}H", data, at)
        if tag in (256, 257):  # ImageWidth, ImageLength: made LONG to hold any size
            struct.pack_into(f"{order}HHII", data, at, tag, 4, 1, width if tag == 256 else height)


_PATCHERS = {
    "PNG": _png_size,
    "JPEG": _jpeg_size,
    "BMP": _bmp_size,
    "WEBP": _webp_size,
    "TIFF": _tiff_size,
}
