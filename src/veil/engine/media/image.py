"""Photo decode and encode: upright BGR pixels in, the same format and quality out.

Formats: JPEG (and MPO, the multi-picture JPEG of phone cameras), PNG, WebP, BMP and TIFF, told apart by
content, not by file name. Only the first picture is read; animated or multi-page files are refused
(MPO extra pictures, such as depth maps and previews, are dropped on purpose: they show faces too).

Pixel modes, as read -> as written:
    RGB, or anything Pillow converts to RGB (CMYK, YCbCr, LAB, HSV)  -> RGB
    RGBA, RGBa, or a palette with transparency                         -> RGBA (PNG, WebP, TIFF)
    L, 1 (bilevel) and 16-bit grey (I;16*, I; scaled down to 8 bits)  -> L
    LA, La                                                             -> LA
    P (palette without transparency)                                   -> RGB
Blurred pixels fit no palette and no two-level scale, hence RGB and L. 16-bit grey loses its low byte.
The ICC profile is always kept where it describes the written colour space (RGB or GRAY); a CMYK
profile of a converted CMYK image would be wrong and is dropped.

Metadata: nothing but the ICC profile and resolution is written by default. With keep_metadata=True,
EXIF (descriptive IFD0 tags and the Exif sub-IFD with maker notes), XMP, IPTC (JPEG) and comments
(JPEG COM, PNG text) are kept, except: GPS (EXIF GPS IFD and XMP exif:GPS*), the EXIF thumbnail and XMP
thumbnails (unobscured copies of the photo), and ImageMagick "Raw profile" PNG text (hidden EXIF).
"""

from __future__ import annotations

import os
import secrets
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, JpegImagePlugin

from veil.engine.errors import (
    CorruptMediaError,
    MediaError,
    MediaTooLargeError,
    OutputError,
    UnsupportedMediaError,
)
from veil.engine.media.kinds import IMAGE_SUFFIXES
from veil.engine.media.metadata import clean_exif, clean_xmp, metadata_save_options, read_comments, read_iptc

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "LoadedImage",
    "read_image",
    "write_image",
]

DEFAULT_MAX_PIXELS = 100_000_000
IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"})

Frame = npt.NDArray[np.uint8]

# Magic bytes of the formats we handle: a file that starts like one of them but fails to open is damaged,
# anything else is simply not a photo we handle.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_WEBP_QUALITY = 90  # WebP stores no quality setting; 90 keeps detail without bloating the file
_TIFF_JPEG_QUALITY = 90
_TIFF_WRITABLE = frozenset({"raw", "tiff_lzw", "tiff_deflate", "tiff_adobe_deflate", "packbits", "jpeg"})
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo and what is needed to write it back.

    Attributes:
        frame_bgr: (H, W, 3) uint8 BGR pixels, upright (EXIF orientation already applied).
        format: Pillow format written back: "JPEG", "PNG", "WEBP", "BMP" or "TIFF" (MPO is written as JPEG).
        source_mode: Pillow mode of the file, e.g. "RGB", "P", "I;16".
        output_mode: mode written back: "RGB", "RGBA", "L" or "LA" (see the module docstring).
        alpha: (H, W) uint8 alpha, upright, or None.
        icc_profile: ICC profile bytes matching output_mode, or None; always written.
        orientation: EXIF orientation (1-8) found in the file and applied to the pixels.
        exif: EXIF bytes already cleaned (orientation 1, no GPS, no thumbnail), or None.
        xmp: XMP packet already cleaned (orientation 1, no GPS, no thumbnails), or None.
        iptc: raw IPTC-NAA records (JPEG only), or None.
        comments: JPEG comment under "comment", or PNG text chunks by keyword.
        save_options: Pillow save options that keep the source's quality: JPEG quantization tables and
            subsampling, WebP lossless or quality, TIFF compression, resolution.
    """

    frame_bgr: Frame
    format: str
    source_mode: str
    output_mode: str
    alpha: Frame | None = None
    icc_profile: bytes | None = None
    orientation: int = 1
    exif: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    comments: Mapping[str, str] = field(default_factory=dict)
    save_options: Mapping[str, Any] = field(default_factory=dict)


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decodes a photo fully and turns it upright.

    Args:
        path: the file; its type is told from its content.
        max_pixels: most pixels (width x height) accepted, checked from the header before decoding.

    Raises:
        CorruptMediaError: the file is empty, truncated or damaged, or is named like a photo
            (IMAGE_SUFFIXES) but its content is no image at all.
        UnsupportedMediaError: an image type not handled (e.g. GIF, even if named .jpg), an animated or
            multi-page file, or content that is no image in a file not named like a photo.
        MediaTooLargeError: more pixels than max_pixels (or than Pillow's decompression-bomb limit).
        MediaError: the file cannot be read at all (missing, no permission).
    """
    name = path.name
    try:
        if path.stat().st_size == 0:
            raise CorruptMediaError(f"{name}: the file is empty")
        with _open(path, name) as im:
            _check_openable(im, name, max_pixels)
            _decode(im, name)
            return _loaded(im, path)
    except OSError as exc:
        raise MediaError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc


def _open(path: Path, name: str) -> Image.Image:
    """Reads the header only, mapping Pillow's refusals to our errors."""
    try:
        # Our own limit is checked next; Pillow's warning above its default limit is not ours to raise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"{name}: too many pixels to decode safely ({exc})") from exc
    except Exception as exc:  # Pillow's header parsers raise many types on damaged files
        with path.open("rb") as file:
            head = file.read(16)
        if head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
            raise CorruptMediaError(f"{name}: the image is damaged and cannot be opened") from exc
        if path.suffix.lower() in IMAGE_SUFFIXES:
            # Named as a photo but holding none: the person expects it obscured, so fail loudly
            # rather than skip it quietly.
            raise CorruptMediaError(f"{name}: not a readable image, despite its name") from exc
        raise UnsupportedMediaError(f"{name}: not a JPEG, PNG, WebP, BMP or TIFF image") from exc


def _check_openable(im: Image.Image, name: str, max_pixels: int) -> None:
    if im.format not in IMAGE_FORMATS:
        raise UnsupportedMediaError(f"{name}: {im.format} images are not handled")
    if getattr(im, "n_frames", 1) > 1 and im.format != "MPO":
        raise UnsupportedMediaError(f"{name}: animated or multi-page {im.format} images are not handled")
    width, height = im.size
    if width * height > max_pixels:
        raise MediaTooLargeError(f"{name}: {width}x{height} is over the limit of {max_pixels:,} pixels")


def _decode(im: Image.Image, name: str) -> None:
    """Decodes every pixel now, so truncation shows here rather than as a grey band in the output."""
    try:
        im.load()
    except Exception as exc:  # any decoder failure on this file means the file is damaged
        raise CorruptMediaError(f"{name}: the image is truncated or damaged ({exc})") from exc


def _loaded(im: Image.Image, path: Path) -> LoadedImage:
    """Builds the upright frame and the write-back details from a decoded image."""
    try:
        exif = im.getexif()
        orientation = _orientation(exif)
        upright = im.transpose(_ORIENTATION_TRANSPOSE[orientation]) if orientation != 1 else im
        frame_bgr, alpha, output_mode = _pixels(upright)
        return LoadedImage(
            frame_bgr=frame_bgr,
            format="JPEG" if im.format == "MPO" else str(im.format),
            source_mode=im.mode,
            output_mode=output_mode,
            alpha=alpha,
            icc_profile=_matching_icc(im.info.get("icc_profile"), output_mode),
            orientation=orientation,
            exif=clean_exif(exif),
            xmp=clean_xmp(im.info.get("xmp")),
            iptc=read_iptc(im),
            comments=read_comments(im),
            save_options=_save_options(im, orientation, path),
        )
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error) as exc:
        raise CorruptMediaError(f"{path.name}: damaged image data ({exc})") from exc


def _orientation(exif: Image.Exif) -> int:
    value = exif.get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and value in _ORIENTATION_TRANSPOSE else 1


def _pixels(im: Image.Image) -> tuple[Frame, Frame | None, str]:
    """Returns (BGR frame, alpha or None, output mode) for any Pillow mode; see the module docstring."""
    if im.mode.startswith("I"):
        # 16-bit grey: keep the high byte. Pillow's own convert("L") clips instead, turning most of the
        # image white.
        grey = (np.asarray(im).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8)
        return _grey_to_bgr(grey), None, "L"
    mode = {"1": "L", "L": "L", "LA": "LA", "La": "LA", "RGBA": "RGBA", "RGBa": "RGBA", "PA": "RGBA"}.get(
        im.mode, "RGB"
    )
    if "transparency" in im.info and mode in ("L", "RGB"):
        mode = "LA" if mode == "L" and im.mode != "P" else "RGBA"
    pixels = np.asarray(im.convert(mode), dtype=np.uint8)
    if mode == "L":
        return _grey_to_bgr(pixels), None, mode
    if mode == "LA":
        return _grey_to_bgr(pixels[:, :, 0]), pixels[:, :, 1].copy(), mode
    bgr = np.ascontiguousarray(pixels[:, :, 2::-1])
    return bgr, (pixels[:, :, 3].copy() if mode == "RGBA" else None), mode


def _grey_to_bgr(grey: Frame) -> Frame:
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)


def _matching_icc(icc: object, output_mode: str) -> bytes | None:
    """The profile, where its colour space (header bytes 16-19) is the one written."""
    if not isinstance(icc, bytes) or len(icc) < 20:
        return None
    wanted = b"GRAY" if output_mode in ("L", "LA") else b"RGB "
    return icc if icc[16:20] == wanted else None


def _save_options(im: Image.Image, orientation: int, path: Path) -> dict[str, Any]:
    """Pillow save options that reproduce the source's quality and resolution."""
    options: dict[str, Any] = {}
    dpi = im.info.get("dpi")
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(isinstance(v, int | float) and v > 0 for v in dpi):
        # Orientations 5-8 swap width and height, and with them the two resolutions.
        options["dpi"] = (dpi[1], dpi[0]) if orientation >= 5 else dpi
    if isinstance(im, JpegImagePlugin.JpegImageFile):
        # The quantization tables are the quality setting itself, so re-using them keeps it exactly
        # (Pillow's quality="keep" needs the original Image object, which a new frame is not).
        options["qtables"] = im.quantization
        subsampling = JpegImagePlugin.get_sampling(im)
        if subsampling >= 0:
            options["subsampling"] = subsampling
        options["progressive"] = bool(im.info.get("progressive") or im.info.get("progression"))
    elif im.format == "WEBP":
        lossless = _webp_is_lossless(path)
        options.update({"lossless": True, "exact": True} if lossless else {"quality": _WEBP_QUALITY})
    elif im.format == "TIFF":
        compression = im.info.get("compression", "raw")
        options["compression"] = compression if compression in _TIFF_WRITABLE else "tiff_lzw"
        if compression == "jpeg":
            options["quality"] = _TIFF_JPEG_QUALITY
    return options


def _webp_is_lossless(path: Path) -> bool:
    """Whether the picture is stored in a "VP8L" (lossless) chunk rather than "VP8 " (lossy)."""
    with path.open("rb") as file:
        file.seek(12)  # past "RIFF", the size and "WEBP"
        while header := file.read(8):
            if len(header) < 8:
                break
            fourcc, size = header[:4], int.from_bytes(header[4:], "little")
            if fourcc in (b"VP8L", b"VP8 "):
                return fourcc == b"VP8L"
            file.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even length
    return False


def write_image(loaded: LoadedImage, frame_bgr: Frame, path: Path, keep_metadata: bool = False) -> None:
    """Encodes a frame in the format and quality the photo was read in.

    The file appears complete or not at all: it is written next to `path` and renamed over it.

    Args:
        loaded: what read_image returned for the source photo.
        frame_bgr: (H, W, 3) uint8 BGR pixels, upright; the same size as loaded.frame_bgr where the
            photo has alpha, which is re-attached.
        path: the output file.
        keep_metadata: keep EXIF, XMP, IPTC and comments (never GPS or thumbnails); the ICC profile
            and resolution are kept either way.

    Raises:
        ValueError: the frame is not (H, W, 3) uint8, or does not fit the alpha channel.
        OutputError: the file cannot be written.
    """
    image = _to_pil(loaded, frame_bgr)
    options = dict(loaded.save_options)
    if loaded.icc_profile:
        options["icc_profile"] = loaded.icc_profile
    if keep_metadata:
        compression = str(loaded.save_options.get("compression", "raw"))
        options.update(
            metadata_save_options(
                loaded.format, loaded.exif, loaded.xmp, loaded.iptc, loaded.comments, compression
            )
        )
    _save_atomically(image, path, loaded.format, options)


def _to_pil(loaded: LoadedImage, frame_bgr: Frame) -> Image.Image:
    if frame_bgr.dtype != np.uint8 or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame_bgr.shape} {frame_bgr.dtype}")
    if loaded.alpha is not None and loaded.alpha.shape != frame_bgr.shape[:2]:
        raise ValueError(f"frame {frame_bgr.shape[:2]} does not match the alpha channel {loaded.alpha.shape}")
    if loaded.output_mode in ("L", "LA"):
        colour = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)[:, :, np.newaxis]
    else:
        colour = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    if loaded.alpha is not None:
        colour = np.concatenate([colour, loaded.alpha[:, :, np.newaxis]], axis=2)
    return Image.fromarray(np.ascontiguousarray(colour.squeeze(axis=2) if colour.shape[2] == 1 else colour))


def _save_atomically(image: Image.Image, path: Path, image_format: str, options: Mapping[str, Any]) -> None:
    """Writes to a temporary file beside `path`, then renames it over `path`. The file gets the mode any
    new file of the user's gets (0666 less the umask), as the video and JSON outputs do; mkstemp's 0600
    would leave photos alone unreadable by the user's group."""
    try:
        descriptor, temporary = _create_beside(path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write there ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(descriptor, "wb") as file:
            image.save(file, format=image_format, **options)
        os.replace(temporary, path)
    except Exception as exc:  # any encoder failure: no partial file may be left behind
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the image ({exc})") from exc


def _create_beside(path: Path) -> tuple[int, str]:
    """A new, uniquely named hidden file beside `path`, created 0666 so that the umask decides its mode."""
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(temporary)
        except FileExistsError:
            continue
