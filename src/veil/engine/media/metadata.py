"""Photo metadata: what is kept with --keep-metadata, cleaned of location and hidden pictures.

Kept: descriptive EXIF IFD0 tags and the Exif sub-IFD (maker notes included), XMP, IPTC (JPEG) and comments
(JPEG COM, PNG text). Never kept: GPS (EXIF GPS IFD, XMP exif:GPS*), the EXIF thumbnail and XMP thumbnails
(unobscured copies of the photo), Google depth/original-image payloads, other Photoshop resources, and
ImageMagick "Raw profile" PNG text (hidden EXIF blocks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from PIL import ExifTags, Image, PngImagePlugin

__all__ = ["clean_exif", "clean_xmp", "metadata_save_options", "read_comments", "read_iptc"]

_KEPT_IFD0_TAGS = frozenset(
    {
        ExifTags.Base.ImageDescription,
        ExifTags.Base.Make,
        ExifTags.Base.Model,
        ExifTags.Base.Software,
        ExifTags.Base.DateTime,
        ExifTags.Base.Artist,
        ExifTags.Base.HostComputer,
        ExifTags.Base.Copyright,
        ExifTags.Base.ExifOffset,
    }
)
_PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
_IPTC_RESOURCE = 0x0404


def clean_exif(exif: Image.Exif) -> bytes | None:
    """EXIF bytes with descriptive IFD0 tags and the Exif sub-IFD only: no GPS IFD, no thumbnail IFD1.

    Orientation is set to 1 because the pixels are already upright.
    """
    if not any(tag in _KEPT_IFD0_TAGS for tag in exif):
        return None
    for tag in list(exif):
        if tag not in _KEPT_IFD0_TAGS:
            del exif[tag]
    exif[ExifTags.Base.Orientation] = 1
    # Pillow writes IFD0 and its Exif and GPS sub-IFDs only; IFD1, the thumbnail, is never written.
    return exif.tobytes()


_XMP_ORIENTATION = (
    re.compile(rb'(tiff:Orientation=")[2-8](")'),
    re.compile(rb"(<tiff:Orientation>)[2-8](</tiff:Orientation>)"),
)
# Location and embedded pictures: GPS in the exif: namespace, thumbnails, and Google's depth and
# original-image payloads (unobscured copies).
_XMP_DROPPED_NAMES = rb"(?:exif(?:EX)?:GPS\w*|\w+:Thumbnails|GImage:\w+|GDepth:\w+)"
_XMP_DROPPED = (
    re.compile(rb"\s" + _XMP_DROPPED_NAMES + rb'="[^"]*"'),
    re.compile(rb"<(" + _XMP_DROPPED_NAMES + rb")\b[^>]*/>"),
    re.compile(rb"<(" + _XMP_DROPPED_NAMES + rb")\b[^>]*>.*?</\1>", re.DOTALL),
)


def clean_xmp(xmp: object) -> bytes | None:
    """The XMP packet with orientation 1 and without GPS or embedded pictures."""
    if isinstance(xmp, str):
        xmp = xmp.encode()
    if not isinstance(xmp, bytes) or not xmp.strip():
        return None
    for pattern in _XMP_ORIENTATION:
        xmp = pattern.sub(rb"\g<1>1\g<2>", xmp)
    for pattern in _XMP_DROPPED:
        xmp = pattern.sub(b"", xmp)
    return xmp


def read_iptc(im: Image.Image) -> bytes | None:
    """The IPTC-NAA records of a JPEG's Photoshop APP13 segment; other Photoshop resources (thumbnails
    among them) are left behind."""
    photoshop = im.info.get("photoshop")
    data = photoshop.get(_IPTC_RESOURCE) if isinstance(photoshop, dict) else None
    return data if isinstance(data, bytes) and data else None


def read_comments(im: Image.Image) -> dict[str, str]:
    if isinstance(im, PngImagePlugin.PngImageFile):
        # "Raw profile type exif/APP1/iptc" chunks hide whole EXIF blocks, GPS included.
        return {
            key: str(value)
            for key, value in im.text.items()
            if not key.startswith("Raw profile type") and key != "XML:com.adobe.xmp"
        }
    comment = im.info.get("comment")
    if isinstance(comment, bytes) and comment:
        return {"comment": comment.decode("utf-8", errors="replace")}
    return {}


def metadata_save_options(
    image_format: str,
    exif: bytes | None,
    xmp: bytes | None,
    iptc: bytes | None,
    comments: Mapping[str, str],
    compression: str = "raw",
) -> dict[str, Any]:
    """Save options that carry the (already cleaned) metadata in the way each format stores it."""
    if image_format == "TIFF":
        tags = Image.Exif()
        if exif:
            tags.load(exif)
            if compression != "raw":
                # Pillow hands compressed TIFFs to libtiff, which cannot write the Exif sub-IFD; the
                # descriptive IFD0 tags (make, model, date, ...) still go through.
                tags.pop(ExifTags.Base.ExifOffset, None)
        if xmp:
            tags[700] = xmp  # TIFF tag XMLPacket
        return {"tiffinfo": tags} if len(tags) else {}
    options: dict[str, Any] = {}
    if exif and image_format != "BMP":
        options["exif"] = exif
    if image_format == "JPEG":
        # A JPEG marker holds at most 65,533 bytes; a larger XMP packet would need Extended XMP.
        if xmp and len(xmp) <= 65_000:
            options["xmp"] = xmp
        if "comment" in comments:
            options["comment"] = comments["comment"]
        if iptc:
            options["extra"] = _app13(iptc)
    elif image_format == "WEBP" and xmp:
        options["xmp"] = xmp
    elif image_format == "PNG":
        options["pnginfo"] = _png_text(comments, xmp)
    return options


def _app13(iptc: bytes) -> bytes:
    """A JPEG APP13 segment holding one Photoshop resource: the IPTC-NAA records."""
    resource = b"8BIM" + _IPTC_RESOURCE.to_bytes(2, "big") + b"\x00\x00" + len(iptc).to_bytes(4, "big") + iptc
    payload = _PHOTOSHOP_HEADER + resource + (b"\x00" if len(iptc) % 2 else b"")
    return b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload


def _png_text(comments: Mapping[str, str], xmp: bytes | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for key, value in comments.items():
        info.add_itxt(key, value)
    if xmp:
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", errors="replace"))
    return info
