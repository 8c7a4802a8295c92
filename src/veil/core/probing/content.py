"""What an uploaded file is, told from its content (never its name), and what can be read of it cheaply.

`sniff_media_type` looks at the first bytes only, so an upload can be refused before it is stored.
`inspect_upload` then reads headers and container structure, never decoding a pixel (the API process must
not: a small PNG can declare 12,000 x 12,000 pixels), and refuses what the workers could not process: more
pixels than the engine's limit, a file with no video stream, one cut short or damaged. `media_properties`
reads the same headers leniently, for files Veil wrote itself. Besides photos and videos, a JSON upload is
a render document (`veil.detections/1`), checked whole and summarized.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from veil.core.errors import MediaRefusedError, UnprocessableMediaError, UnsupportedMediaTypeError
from veil.core.probing.photo import read_photo_header
from veil.core.probing.video import probe_video
from veil.core.probing.video_container import RefusedVideoError, read_video_header
from veil.core.services.documents import DOCUMENT_TYPE, MAX_DOCUMENT_BYTES, DocumentError, read_document
from veil.core.storage import UploadTooLargeError
from veil.engine.media.image import DEFAULT_MAX_PIXELS

__all__ = [
    "IMAGE_TYPES",
    "MAX_PIXELS",
    "SNIFF_BYTES",
    "VIDEO_TYPES",
    "inspect_upload",
    "media_properties",
    "sniff_media_type",
    "upload_limit",
]

MAX_PIXELS = DEFAULT_MAX_PIXELS
"""Most pixels of a photo, or of one video frame, accepted: the limit the engine applies to photos."""

SNIFF_BYTES = 4096
"""How many leading bytes `sniff_media_type` wants; fewer are fine for a shorter file."""

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff"})
VIDEO_TYPES = frozenset(
    {
        "video/mp4",
        "video/quicktime",
        "video/3gpp",
        "video/x-matroska",
        "video/webm",
        "video/x-msvideo",
        "video/mp2t",
        "video/mpeg",
        "video/x-flv",
        "video/x-ms-asf",
    }
)

log = logging.getLogger(__name__)

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE_ID = b"\x42\x82"
_TS_PACKET = 188
# BITMAPCOREHEADER, BITMAPINFOHEADER and its later versions: the sizes a real BMP's DIB header has.
_BMP_DIB_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
# ISO base media brands that are not videos Veil can process: HEIF/AVIF photos and audio-only files.
_FTYP_NOT_VIDEO = {
    b"heic": "a HEIF photo",
    b"heix": "a HEIF photo",
    b"mif1": "a HEIF photo",
    b"msf1": "a HEIF image sequence",
    b"avif": "an AVIF photo",
    b"avis": "an AVIF image sequence",
    b"M4A ": "an audio file (M4A)",
    b"M4B ": "an audio book (M4B)",
    b"M4P ": "an audio file (M4P)",
}
# Common uploads that are not media, named in the refusal so the client sees what it sent.
_KNOWN_OTHERS = (
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
)


def sniff_media_type(head: bytes) -> str:
    """The MIME type of a photo or video, or `application/json` for what may be a render document, from its
    first bytes (`SNIFF_BYTES` of them, or the whole file).

    Raises:
        UnsupportedMediaTypeError: the content is none of these; the message says what it looks like
            instead.
    """
    for sniff in _SNIFFERS:
        media_type = sniff(head)
        if media_type is not None:
            return media_type
    raise UnsupportedMediaTypeError(
        f"The content is {_describe_unknown(head)}, not a photo (JPEG, PNG, WebP, BMP, TIFF) or a video "
        "(MP4, MOV, MKV, WebM, AVI, MPEG, FLV, WMV) that Veil can process, nor a veil.detections/1 JSON "
        "document for a render task; the file name is not used."
    )


def upload_limit(media_type: str, max_upload_bytes: int) -> int:
    """The most bytes accepted for an upload of `media_type`: render documents have a smaller limit."""
    return min(max_upload_bytes, MAX_DOCUMENT_BYTES) if media_type == DOCUMENT_TYPE else max_upload_bytes


def inspect_upload(path: Path, media_type: str) -> dict[str, Any]:
    """The properties of an upload (see `media_properties`), once its headers and structure show that a
    worker can process it; nothing is decoded.

    A render document's properties are its summary (`DocumentTally.summary`).

    Raises:
        UnprocessableMediaError: more than `MAX_PIXELS` pixels (photo, or video frame), no video stream in a
            video container, a file cut short, headers that cannot be read, or a render document that is
            not valid; the message says which.
        UploadTooLargeError: a render document over `MAX_DOCUMENT_BYTES`.
    """
    properties: dict[str, Any] = {"size": path.stat().st_size}
    if media_type == DOCUMENT_TYPE:
        properties.update(_document_summary(path, properties["size"]))
    elif media_type in IMAGE_TYPES:
        header = read_photo_header(path, media_type, MAX_PIXELS, check_complete=True)
        if header.several_pictures:
            raise UnprocessableMediaError(
                "The photo is animated or has several pages; Veil processes still, single photos."
            )
        properties.update(width=header.width, height=header.height)
    else:
        properties.update(probe_video(path, MAX_PIXELS, check_complete=True).properties())
    return properties


def _document_summary(path: Path, size: int) -> dict[str, Any]:
    if size > MAX_DOCUMENT_BYTES:
        raise UploadTooLargeError(f"a render document larger than the limit of {MAX_DOCUMENT_BYTES} bytes")
    try:
        return read_document(path.read_bytes())
    except DocumentError as exc:
        raise UnprocessableMediaError(f"The file is not a valid veil.detections/1 document: {exc}") from exc


def media_properties(path: Path, media_type: str) -> dict[str, Any]:
    """`size` in bytes, plus what headers tell without decoding: `width`, `height` (photos as shown after
    EXIF orientation, videos as coded), and for videos `duration` (s), `fps` and `frame_count` when the
    container records them. For files Veil wrote: one whose headers cannot be read reports its size alone."""
    properties: dict[str, Any] = {"size": path.stat().st_size}
    try:
        if media_type in IMAGE_TYPES:
            header = read_photo_header(path, media_type, MAX_PIXELS, check_complete=False)
            properties.update(width=header.width, height=header.height)
        elif media_type in VIDEO_TYPES:
            # Read here, not in a capped child as uploads are: Veil encoded this file itself.
            properties.update(read_video_header(path, MAX_PIXELS).properties())
    except (MediaRefusedError, RefusedVideoError) as exc:
        log.info("could not read properties of %s (%s): %s", path.name, media_type, exc)
    return properties


def _json(head: bytes) -> str | None:
    """A JSON object: the only JSON Veil takes is a render document, which `inspect_upload` then checks."""
    return DOCUMENT_TYPE if head.lstrip(b" \t\r\n").startswith(b"{") else None


def _jpeg(head: bytes) -> str | None:
    return "image/jpeg" if head.startswith(b"\xff\xd8\xff") else None


def _png(head: bytes) -> str | None:
    return "image/png" if head.startswith(b"\x89PNG\r\n\x1a\n") else None


def _riff(head: bytes) -> str | None:
    if not head.startswith(b"RIFF"):
        return None
    return {b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}.get(head[8:12])


def _bmp(head: bytes) -> str | None:
    # "BM" alone is too common (a text file may start with it): also require zero reserved bytes and a
    # known DIB header size.
    if not head.startswith(b"BM") or len(head) < 18 or head[6:10] != b"\0\0\0\0":
        return None
    return "image/bmp" if int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES else None


def _tiff(head: bytes) -> str | None:
    return "image/tiff" if head[:4] in (b"II*\0", b"MM\0*") else None


def _iso_media(head: bytes) -> str | None:
    if head[4:8] != b"ftyp":
        return None
    brand = head[8:12]
    if brand in _FTYP_NOT_VIDEO:
        raise UnsupportedMediaTypeError(
            f"The content is {_FTYP_NOT_VIDEO[brand]}, which Veil does not process; send a JPEG, PNG, WebP, "
            "BMP or TIFF photo, or a video."
        )
    if brand == b"qt  ":
        return "video/quicktime"
    return "video/3gpp" if brand.startswith(b"3g") else "video/mp4"


def _ebml(head: bytes) -> str | None:
    """Matroska and WebM share the EBML container; the DocType element in the header tells them apart."""
    if not head.startswith(_EBML_MAGIC):
        return None
    at = head.find(_EBML_DOCTYPE_ID)
    if at < 0 or at + 3 > len(head):
        return "video/x-matroska"
    size = head[at + 2] & 0x7F  # a one-byte EBML size (0x80 | n), which every muxer writes for DocType
    doctype = head[at + 3 : at + 3 + size]
    return "video/webm" if doctype == b"webm" else "video/x-matroska"


def _mpeg_ts(head: bytes) -> str | None:
    # One sync byte is too weak a signal: require it at the start of three consecutive packets.
    if len(head) < 2 * _TS_PACKET + 1:
        return None
    return "video/mp2t" if all(head[i * _TS_PACKET] == 0x47 for i in range(3)) else None


def _simple_signatures(head: bytes) -> str | None:
    if head.startswith(b"\x00\x00\x01\xba"):
        return "video/mpeg"
    if head.startswith(b"FLV\x01"):
        return "video/x-flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "video/x-ms-asf"
    return None


_SNIFFERS: tuple[Callable[[bytes], str | None], ...] = (
    _json,
    _jpeg,
    _png,
    _riff,
    _bmp,
    _tiff,
    _iso_media,
    _ebml,
    _mpeg_ts,
    _simple_signatures,
)


def _describe_unknown(head: bytes) -> str:
    if not head:
        return "empty"
    for magic, description in _KNOWN_OTHERS:
        if head.startswith(magic):
            return description
    try:
        # Incremental, so a character cut at the end of the sniffed bytes does not count as binary.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return f"binary data starting with {head[:8].hex(' ')}"
    return "binary data" if b"\0" in head else "text"
