"""COCO 1.0 read back by pycocotools: images, categories, boxes and track ids as written."""

from __future__ import annotations

import zipfile

import pytest
from pycocotools.coco import COCO

from tests.engine.annotations.reports import photo_report, video_report
from veil.engine.annotations import export_annotations


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> COCO:
    folder = tmp_path_factory.mktemp("coco")
    target = folder / "coco.zip"
    export_annotations([("clip.mp4", video_report()), ("shots/a.jpg", photo_report())], "COCO 1.0", target)
    with zipfile.ZipFile(target) as archive:
        archive.extract("annotations/instances_default.json", folder)
    return COCO(str(folder / "annotations/instances_default.json"))


def test_pycocotools_reads_every_frame_and_box(coco: COCO) -> None:
    video = video_report()
    assert len(coco.getImgIds()) == 40 + 1
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["face", "plate"]
    assert len(coco.getAnnIds()) == sum(len(f.detections) for f in video.frames) + 2
    frame_12 = next(i for i in coco.dataset["images"] if i["file_name"] == "clip/frame_000012.jpg")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[frame_12["id"]]))
    want = video.frames[12].detections
    assert sorted(a["attributes"]["track_id"] for a in anns) == sorted(want.track_id.tolist())
    x0, y0, x1, y1 = want.xyxy[0]
    first = next(a for a in anns if a["attributes"]["track_id"] == want.track_id[0])
    assert first["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0], abs=0.01)
    assert (frame_12["width"], frame_12["height"]) == (320, 240)


def test_photo_is_one_image_named_by_its_path(coco: COCO) -> None:
    photo = next(i for i in coco.dataset["images"] if i["file_name"] == "shots/a.jpg")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[photo["id"]]))
    assert [coco.cats[a["category_id"]]["name"] for a in anns] == ["face", "plate"]
    assert all("track_id" not in a["attributes"] for a in anns)
