"""Bad files are refused with a message naming the cause, and nothing is returned: another format,
boxes and frames that do not fit the media, unknown labels, XML entities and DTDs, unsafe zip members
and zip bombs."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from tests.engine.annotations.reports import photo_report, video_report
from veil.engine.annotations import export_annotations, formats, import_annotations
from veil.engine.errors import (
    AnnotationContentError,
    AnnotationError,
    AnnotationFileError,
    UnknownFormatError,
    UnsafeArchiveError,
)
from veil.engine.report import MediaInfo

VIDEO = video_report()
MEDIA = [("clip.mp4", VIDEO.media)]
CVAT_VIDEO_HEAD = (
    '<annotations><version>1.1</version><track id="1" label="{label}" source="manual">'
    '<box frame="{frame}" outside="0" occluded="0" keyframe="1" xtl="{x0}" ytl="10" xbr="{x1}" ybr="40" '
    'z_order="0"/></track></annotations>'
)


def cvat_video(tmp_path: Path, label: str = "face", frame: int = 3, x0: float = 10, x1: float = 50) -> Path:
    path = tmp_path / "annotations.xml"
    path.write_text(CVAT_VIDEO_HEAD.format(label=label, frame=frame, x0=x0, x1=x1))
    return path


def zipped(tmp_path: Path, members: dict[str, bytes], name: str = "upload.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


@pytest.mark.parametrize(
    ("exported_as", "imported_as", "message"),
    [
        ("COCO 1.0", "CVAT for video 1.1", "no CVAT annotations.xml"),
        ("CVAT for images 1.1", "CVAT for video 1.1", "is CVAT for images, not CVAT for video"),
        ("CVAT for video 1.1", "CVAT for images 1.1", "is CVAT for video (tracks), not CVAT for images"),
        ("MOT 1.1", "COCO 1.0", "no COCO annotations/instances_*.json"),
        ("PASCAL VOC 1.1", "Ultralytics YOLO Detection 1.0", "no data.yaml"),
        ("Ultralytics YOLO Detection 1.0", "PASCAL VOC 1.1", "no Annotations/*.xml"),
        ("Datumaro 1.0", "MOT 1.1", "no gt/gt.txt"),
        ("COCO 1.0", "Datumaro 1.0", "annotations/instances_default.json: not a Datumaro file"),
    ],
)
def test_a_file_of_another_format_is_refused(
    exported_as: str, imported_as: str, message: str, tmp_path: Path
) -> None:
    export_annotations([("clip.mp4", VIDEO)], exported_as, tmp_path / "other.zip")
    with pytest.raises(AnnotationFileError, match=re.escape(message)):
        import_annotations(tmp_path / "other.zip", imported_as, MEDIA)


def test_coco_json_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "instances_default.json"
    path.write_text(json.dumps({"images": [], "annotations": {}}))
    with pytest.raises(AnnotationFileError, match="not a COCO instances file"):
        import_annotations(path, "COCO 1.0", MEDIA)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "person"}, "unknown label 'person'; Veil knows face, plate"),
        ({"frame": 40}, "frame 40: no such frame (the media has 40)"),
        ({"x1": 330}, "box [10.0, 10.0, 330.0, 40.0] lies outside the 320x240 frame"),
        ({"x0": -5}, "lies outside the 320x240 frame"),
        ({"x0": 50, "x1": 50}, "is empty"),
    ],
)
def test_content_that_does_not_fit_the_media_is_refused(
    kwargs: dict[str, object], message: str, tmp_path: Path
) -> None:
    with pytest.raises(AnnotationContentError, match=re.escape(message)):
        import_annotations(cvat_video(tmp_path, **kwargs), "CVAT for video 1.1", MEDIA)  # type: ignore[arg-type]


def test_a_box_a_pixel_outside_is_clipped(tmp_path: Path) -> None:
    report = import_annotations(cvat_video(tmp_path, x0=-0.6, x1=320.8), "CVAT for video 1.1", MEDIA)[
        "clip.mp4"
    ]
    assert report.frames[3].detections.xyxy[0].tolist() == [0.0, 10.0, 320.0, 40.0]


def test_items_naming_no_media_are_refused(tmp_path: Path) -> None:
    export_annotations([("other.jpg", photo_report())], "COCO 1.0", tmp_path / "coco.zip")
    with pytest.raises(
        AnnotationContentError, match=re.escape("item 'other.jpg' names none of the media files (clip.mp4)")
    ):
        import_annotations(tmp_path / "coco.zip", "COCO 1.0", MEDIA)


LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<annotations>&lol2;</annotations>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY ext SYSTEM "file:///etc/passwd">]>
<annotations><track id="0" label="&ext;"/></annotations>"""
DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE annotations SYSTEM "http://example.invalid/a.dtd">
<annotations/>"""


@pytest.mark.parametrize(
    "xml", [LAUGHS, EXTERNAL, DTD_ONLY], ids=["entity expansion", "external entity", "dtd"]
)
@pytest.mark.parametrize("fmt", ["CVAT for video 1.1", "CVAT for images 1.1", "PASCAL VOC 1.1"])
def test_xml_with_entities_or_a_dtd_is_refused(xml: bytes, fmt: str, tmp_path: Path) -> None:
    member = "Annotations/clip/frame_000000.xml" if fmt.startswith("PASCAL") else "annotations.xml"
    with pytest.raises(UnsafeArchiveError, match="XML with a DTD or entities is refused"):
        import_annotations(zipped(tmp_path, {member: xml}), fmt, MEDIA)


@pytest.mark.parametrize(
    "member", ["../annotations.xml", "/annotations.xml", "a/../../x.xml", "C:/x.xml", "a\\..\\x"]
)
def test_zip_members_named_outside_their_folder_are_refused(member: str, tmp_path: Path) -> None:
    archive = zipped(tmp_path, {"annotations.xml": b"<annotations/>", member: b"<annotations/>"})
    with pytest.raises(UnsafeArchiveError, match="would be written outside its folder"):
        import_annotations(archive, "CVAT for video 1.1", MEDIA)


def test_a_zip_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # 50 MB of spaces deflate to about 50 KB: a ratio near 1000.
    archive = zipped(tmp_path, {"annotations.xml": b"<annotations>" + b" " * 50_000_000 + b"</annotations>"})
    with pytest.raises(UnsafeArchiveError, match="expands too far"):
        import_annotations(archive, "CVAT for video 1.1", MEDIA)


def test_a_zip_over_the_total_size_is_refused(tmp_path: Path) -> None:
    export_annotations([("clip.mp4", VIDEO)], "MOT 1.1", tmp_path / "mot.zip")
    with pytest.raises(UnsafeArchiveError, match="expands too far"):
        import_annotations(tmp_path / "mot.zip", "MOT 1.1", MEDIA, max_total_bytes=1000)


def test_unknown_format_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        UnknownFormatError, match=re.escape("no annotation format named 'LabelMe 3.0'; Veil knows COCO 1.0, ")
    ):
        import_annotations(tmp_path / "x.zip", "LabelMe 3.0", MEDIA)


def test_track_formats_refuse_photos(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError, match=re.escape("MOT 1.1 holds videos only; a.jpg is a photo")):
        export_annotations([("a.jpg", photo_report())], "MOT 1.1", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_errors_are_annotation_errors() -> None:
    for error in (AnnotationContentError, AnnotationFileError, UnknownFormatError, UnsafeArchiveError):
        assert issubclass(error, AnnotationError)


def test_formats_are_named_as_cvat_names_them() -> None:
    assert {(f.name, f.version, f.media) for f in formats()} == {
        ("CVAT for images 1.1", "1.1", ("image", "video")),
        ("CVAT for video 1.1", "1.1", ("video",)),
        ("COCO 1.0", "1.0", ("image", "video")),
        ("Datumaro 1.0", "1.0", ("image", "video")),
        ("MOT 1.1", "1.1", ("video",)),
        ("PASCAL VOC 1.1", "1.1", ("image", "video")),
        ("Ultralytics YOLO Detection 1.0", "1.0", ("image", "video")),
    }
    assert all(f.can_export and f.can_import for f in formats())


def test_frames_beyond_a_shorter_video_are_refused(tmp_path: Path) -> None:
    export_annotations([("clip.mp4", VIDEO)], "COCO 1.0", tmp_path / "coco.zip")
    media = [("clip.mp4", MediaInfo("video", 320, 240, 25.0, 10, 0.4))]
    with pytest.raises(AnnotationContentError, match=re.escape("no such frame (the media has 10)")):
        import_annotations(tmp_path / "coco.zip", "COCO 1.0", media)
