"""Tests of read_image() and write_image(): orientation, formats, quality, metadata and errors."""

from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import ExifTags, Image, ImageCms, JpegImagePlugin, PngImagePlugin

from veil.engine.errors import CorruptMediaError, MediaTooLargeError, OutputError, UnsupportedMediaError
from veil.engine.media.image import IMAGE_SUFFIXES, LoadedImage, read_image, write_image

WIDTH, HEIGHT = 64, 48  # as stored; orientation 6 makes the upright photo 48 wide and 64 tall
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    b' xmlns:dc="http://purl.org/dc/elements/1.1/" tiff:Orientation="6" exif:GPSLatitude="51,30.0N">'
    b"<dc:creator>Ann Example</dc:creator><exif:GPSLongitude>0,7.0W</exif:GPSLongitude>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}


@functools.cache
def srgb_profile() -> bytes:
    """One sRGB profile for the whole run: a new one carries a new creation time, so bytes would differ."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int = 6) -> Image.Exif:
    """EXIF as a phone writes it: orientation, make and model, a maker note and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Veil Cameras"
    exif[ExifTags.Base.Model] = "V1"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.MakerNote] = b"serial 1234"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 0.0)
    return exif


def photo_pixels(width: int = WIDTH, height: int = HEIGHT) -> npt.NDArray[np.uint8]:
    """A smooth gradient with a marker in the stored top-left corner, so orientation can be checked."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], axis=2).astype(np.uint8)
    rgb[:8, :8] = (255, 0, 0)
    return rgb


def save_photo(path: Path, image_format: str, **options: object) -> Path:
    """Saves the test photo with orientation 6, GPS, XMP and an sRGB profile, where the format holds them."""
    image = Image.fromarray(photo_pixels())
    if image_format != "BMP":
        options = {"exif": camera_exif().tobytes(), "icc_profile": srgb_profile(), **options}
    if image_format in ("JPEG", "WEBP"):
        options.setdefault("xmp", XMP)
    if image_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        options.setdefault("pnginfo", info)
    image.save(path, image_format, **options)
    return path


def written(loaded: LoadedImage, tmp_path: Path, keep_metadata: bool = False) -> Image.Image:
    out = tmp_path / f"out{FORMATS[loaded.format]}"
    write_image(loaded, loaded.frame_bgr, out, keep_metadata=keep_metadata)
    image = Image.open(out)
    image.load()
    return image


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_read_turns_the_photo_upright(tmp_path: Path, image_format: str) -> None:
    loaded = read_image(save_photo(tmp_path / f"in{FORMATS[image_format]}", image_format))
    assert loaded.frame_bgr.shape == (WIDTH, HEIGHT, 3)
    assert loaded.frame_bgr.dtype == np.uint8
    # Orientation 6 means "rotate 90 degrees clockwise to view": the stored top-left marker ends top-right.
    assert loaded.frame_bgr[2, HEIGHT - 3, 2] > 200  # red, in BGR order
    assert loaded.frame_bgr[2, 2, 2] < 100


@pytest.mark.parametrize("image_format", FORMATS)
def test_each_format_round_trips_in_the_same_format_and_size(tmp_path: Path, image_format: str) -> None:
    loaded = read_image(save_photo(tmp_path / f"in{FORMATS[image_format]}", image_format))
    out = written(loaded, tmp_path)
    assert out.format == image_format
    assert out.size == (loaded.frame_bgr.shape[1], loaded.frame_bgr.shape[0])
    assert out.getexif().get(ExifTags.Base.Orientation, 1) == 1
    again = np.asarray(out.convert("RGB"))[:, :, ::-1].astype(int)
    assert np.abs(again - loaded.frame_bgr).mean() < 3


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_metadata_is_stripped_by_default_but_the_profile_kept(tmp_path: Path, image_format: str) -> None:
    loaded = read_image(save_photo(tmp_path / f"in{FORMATS[image_format]}", image_format))
    out = written(loaded, tmp_path)
    exif = out.getexif()
    assert ExifTags.Base.Make not in exif
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert not exif.get_ifd(ExifTags.IFD.Exif)
    assert "xmp" not in out.info
    assert out.info.get("icc_profile") == srgb_profile()


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_keep_metadata_keeps_all_but_location(tmp_path: Path, image_format: str) -> None:
    loaded = read_image(save_photo(tmp_path / f"in{FORMATS[image_format]}", image_format))
    out = written(loaded, tmp_path, keep_metadata=True)
    exif = out.getexif()
    assert (exif.get(ExifTags.Base.Make), exif.get(ExifTags.Base.Model)) == ("Veil Cameras", "V1")
    assert exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.MakerNote) == b"serial 1234"
    assert exif.get(ExifTags.Base.Orientation) == 1
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert ExifTags.IFD.GPSInfo not in exif
    assert out.info.get("icc_profile") == srgb_profile()
    if image_format != "TIFF":  # only the JPEG, PNG and WebP sources were given XMP
        xmp = out.info["xmp"]
        xmp = xmp if isinstance(xmp, bytes) else xmp.encode()
        assert b"Ann Example" in xmp
        assert b"GPS" not in xmp
        assert b'tiff:Orientation="1"' in xmp


@pytest.mark.parametrize("quality", [40, 95])
def test_jpeg_quality_is_kept(tmp_path: Path, quality: int) -> None:
    source = save_photo(tmp_path / "in.jpg", "JPEG", quality=quality, subsampling=0)
    with Image.open(source) as original:
        tables = original.quantization
    out = written(read_image(source), tmp_path)
    assert isinstance(out, JpegImagePlugin.JpegImageFile)
    assert out.quantization == tables
    assert JpegImagePlugin.get_sampling(out) == 0


def test_lossless_webp_stays_lossless(tmp_path: Path) -> None:
    loaded = read_image(save_photo(tmp_path / "in.webp", "WEBP", lossless=True))
    out = tmp_path / "out.webp"
    write_image(loaded, loaded.frame_bgr, out, keep_metadata=False)
    content = out.read_bytes()
    assert b"VP8L" in content
    assert b"VP8 " not in content
    assert np.array_equal(read_image(out).frame_bgr, loaded.frame_bgr)


@pytest.mark.parametrize("keep_metadata", [False, True])
@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate", "packbits", "raw"])
def test_tiff_compression_is_kept(tmp_path: Path, compression: str, keep_metadata: bool) -> None:
    exif = camera_exif()
    if compression != "raw":  # libtiff, which writes compressed TIFFs, cannot write EXIF sub-IFDs
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation], exif[ExifTags.Base.Model] = 6, "V1"
    loaded = read_image(save_photo(tmp_path / "in.tif", "TIFF", compression=compression, exif=exif.tobytes()))
    out = written(loaded, tmp_path, keep_metadata=keep_metadata)
    assert out.info["compression"] == compression
    assert out.getexif().get(ExifTags.Base.Model) == ("V1" if keep_metadata else None)


PIXEL_MODES = {
    # mode of the source: (output mode, whether alpha is kept)
    "RGBA": ("RGBA", True),
    "LA": ("LA", True),
    "L": ("L", False),
    "1": ("L", False),
    "P": ("RGB", False),
    "P with transparency": ("RGBA", True),
    "I;16": ("L", False),
}


@pytest.mark.parametrize(("mode", "expected"), PIXEL_MODES.items(), ids=PIXEL_MODES.keys())
def test_pixel_modes_are_read_as_bgr_and_written_sensibly(
    tmp_path: Path, mode: str, expected: tuple[str, bool]
) -> None:
    output_mode, has_alpha = expected
    source = tmp_path / "in.png"
    if mode == "I;16":
        Image.fromarray(np.full((HEIGHT, WIDTH), 40_000, np.uint16)).save(source)
    elif mode.startswith("P"):
        palette = Image.fromarray(photo_pixels()).convert("P")
        palette.save(source, **({"transparency": 0} if "transparency" in mode else {}))
    else:
        rgba = Image.fromarray(np.dstack([photo_pixels(), np.full((HEIGHT, WIDTH), 77, np.uint8)]))
        rgba.convert(mode).save(source)
    loaded = read_image(source)
    assert loaded.frame_bgr.shape == (HEIGHT, WIDTH, 3)
    assert (loaded.output_mode, loaded.alpha is not None) == (output_mode, has_alpha)
    out = written(loaded, tmp_path)
    assert out.mode == output_mode
    if has_alpha:
        assert np.array_equal(np.asarray(out)[:, :, -1], loaded.alpha)
    if mode == "I;16":
        assert int(loaded.frame_bgr[0, 0, 0]) == 40_000 >> 8  # scaled, not clipped to white


def test_alpha_is_reattached_after_obscuring(tmp_path: Path) -> None:
    alpha = np.tile(np.arange(WIDTH, dtype=np.uint8) * 4, (HEIGHT, 1))
    Image.fromarray(np.dstack([photo_pixels(), alpha])).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    frame = np.zeros_like(loaded.frame_bgr)
    write_image(loaded, frame, tmp_path / "out.png", keep_metadata=False)
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert np.array_equal(out[:, :, 3], alpha)
    assert not out[:, :, :3].any()


def test_mpo_from_a_phone_is_written_as_a_single_jpeg(tmp_path: Path) -> None:
    first, depth = Image.fromarray(photo_pixels()), Image.fromarray(photo_pixels()[::-1].copy())
    first.save(tmp_path / "in.jpg", "MPO", save_all=True, append_images=[depth])
    loaded = read_image(tmp_path / "in.jpg")
    out = written(loaded, tmp_path)
    assert (loaded.format, out.format, getattr(out, "n_frames", 1)) == ("JPEG", "JPEG", 1)


def test_iptc_and_comments_are_kept_only_when_asked(tmp_path: Path) -> None:
    iptc = b"\x1c\x02\x78\x00\x05Hello"  # record 2:120, the caption
    source = tmp_path / "in.jpg"
    app13 = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc + b"\x00"
    Image.fromarray(photo_pixels()).save(
        source, comment="taken by Ann", extra=b"\xff\xed" + struct.pack(">H", len(app13) + 2) + app13
    )
    loaded = read_image(source)
    kept, stripped = written(loaded, tmp_path, keep_metadata=True), written(loaded, tmp_path)
    assert kept.info["comment"] == b"taken by Ann"
    assert kept.info["photoshop"] == {0x0404: iptc}
    assert "comment" not in stripped.info
    assert "photoshop" not in stripped.info


def test_png_text_is_kept_without_hidden_exif(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ann")
    info.add_text("Raw profile type exif", "exif\n 10\n4578696600004d4d002a")
    Image.fromarray(photo_pixels()).save(tmp_path / "in.png", pnginfo=info)
    loaded = read_image(tmp_path / "in.png")
    kept = written(loaded, tmp_path, keep_metadata=True)
    assert kept.text == {"Author": "Ann"}  # type: ignore[attr-defined]
    assert written(loaded, tmp_path).text == {}  # type: ignore[attr-defined]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming the given size, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


BAD_FILES = {
    "zero bytes": ("x.jpg", b"", CorruptMediaError, "empty"),
    "truncated jpeg": ("x.jpg", jpeg_bytes()[: len(jpeg_bytes()) // 2], CorruptMediaError, "truncated"),
    "jpeg header only": ("x.jpg", jpeg_bytes()[:20], CorruptMediaError, "damaged"),
    "png signature then junk": ("x.jpg", b"\x89PNG\r\n\x1a\n" + b"junk" * 10, CorruptMediaError, "damaged"),
    "text named .jpg": ("x.jpg", b"this is not a photo\n", CorruptMediaError, "not a readable image"),
    "text named .txt": ("x.txt", b"this is not a photo\n", UnsupportedMediaError, "not a JPEG"),
    "gif named .jpg": ("x.jpg", gif_bytes(), UnsupportedMediaError, "GIF"),
    "header claiming 30000x30000": ("x.jpg", png_header_only(30_000, 30_000), MediaTooLargeError, "pixels"),
    "header claiming 10000x9500": (
        "x.jpg",
        png_header_only(10_000, 9_500),
        MediaTooLargeError,
        "over the limit",
    ),
}


@pytest.mark.parametrize(("name", "content", "error", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files_raise_our_errors_only(
    tmp_path: Path, name: str, content: bytes, error: type[Exception], message: str
) -> None:
    """A text file named like a photo fails (it was meant to be obscured); named otherwise it is skipped."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message) as raised:
        read_image(path, max_pixels=50_000_000)
    assert "\n" not in str(raised.value)


def test_max_pixels_is_checked_before_decoding(tmp_path: Path) -> None:
    path = save_photo(tmp_path / "in.png", "PNG")
    with pytest.raises(MediaTooLargeError, match="64x48"):
        read_image(path, max_pixels=WIDTH * HEIGHT - 1)
    assert read_image(path, max_pixels=WIDTH * HEIGHT).frame_bgr.size


def test_an_unwritable_output_raises_output_error(tmp_path: Path) -> None:
    loaded = read_image(save_photo(tmp_path / "in.png", "PNG"))
    with pytest.raises(OutputError):
        write_image(loaded, loaded.frame_bgr, tmp_path / "missing" / "out.png", keep_metadata=False)


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    loaded = read_image(save_photo(tmp_path / "in.jpg", "JPEG"))
    broken = LoadedImage(**{**loaded.__dict__, "save_options": {"qtables": "not tables"}})
    with pytest.raises(OutputError):
        write_image(broken, loaded.frame_bgr, tmp_path / "out.jpg", keep_metadata=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jpg"]


def test_handled_suffixes() -> None:
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"} <= IMAGE_SUFFIXES
