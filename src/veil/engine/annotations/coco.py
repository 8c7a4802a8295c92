"""COCO 1.0 (instances), as CVAT writes it: `annotations/instances_default.json`, images under
`images/default/`. Score, source and track id go in each annotation's `attributes`, as CVAT puts its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from veil.engine.annotations.archive import Bundle, DatasetWriter
from veil.engine.annotations.base import (
    LABELS,
    AnnotationFormat,
    Collector,
    ExportDataset,
    FormatInfo,
    Item,
    register,
)
from veil.engine.annotations.fields import box_attributes, read_attributes
from veil.engine.errors import AnnotationFileError

__all__ = ["Coco"]

_ANNOTATIONS = "annotations/instances_default.json"


@register
class Coco(AnnotationFormat):
    info = FormatInfo("COCO 1.0", "1.0", True, True, ("image", "video"), tracks=True, scores=True)

    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        categories = [{"id": i + 1, "name": label, "supercategory": ""} for i, label in enumerate(LABELS)]
        with out.open_text(_ANNOTATIONS) as text:
            head = {"licenses": [{"name": "", "id": 0, "url": ""}], "info": _INFO, "categories": categories}
            text.write(json.dumps(head)[:-1] + ', "images": [')
            text.lines(_joined(_image(n, item) for n, item in enumerate(dataset.all_items(), 1)))
            text.write('], "annotations": [')
            text.lines(_joined(_annotations(dataset)))
            text.write("]}")
        dataset.write_images(out, "images/default")

    def read(self, bundle: Bundle, target: Collector) -> None:
        names = [n for n in bundle.find(".json") if "instances_" in n or len(bundle.names()) == 1]
        if not names:
            raise AnnotationFileError(f"{bundle.name}: no COCO annotations/instances_*.json file in it")
        for name in names:
            _read_file(bundle.name, name, _load(bundle, name), target)


_INFO = {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""}


def _joined(parts: Iterator[str]) -> Iterator[str]:
    for n, part in enumerate(parts):
        yield part if n == 0 else ", " + part


def _image(image_id: int, item: Item) -> str:
    return json.dumps(
        {
            "id": image_id,
            "width": item.width,
            "height": item.height,
            "file_name": item.image_path,
            "license": 0,
            "flickr_url": "",
            "coco_url": "",
            "date_captured": 0,
        }
    )


def _annotations(dataset: ExportDataset) -> Iterator[str]:
    ann_id = 0
    for image_id, item in enumerate(dataset.all_items(), 1):
        d = item.boxes
        for row in range(len(d)):
            x0, y0, x1, y1 = (round(float(v), 2) for v in d.xyxy[row])
            ann_id += 1
            ann = {
                "id": ann_id,
                "image_id": image_id,
                "category_id": LABELS.index(str(d.label[row])) + 1,
                "segmentation": [],
                "area": round((x1 - x0) * (y1 - y0), 2),
                "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                "iscrowd": 0,
                "attributes": {"occluded": False, **box_attributes(d, row)},
            }
            yield json.dumps(ann)


def _load(bundle: Bundle, name: str) -> dict[str, Any]:
    where = f"{bundle.name}: {name}"
    try:
        document = json.loads(bundle.read_text(name))
    except json.JSONDecodeError as exc:
        raise AnnotationFileError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), list) for key in ("images", "annotations", "categories")
    ):
        raise AnnotationFileError(f"{where}: not a COCO instances file (images, annotations, categories)")
    return document


def _read_file(bundle_name: str, name: str, document: dict[str, Any], target: Collector) -> None:
    where = f"{bundle_name}: {name}"
    try:
        labels = {c["id"]: str(c["name"]) for c in document["categories"]}
        images = {i["id"]: target.resolve(str(i["file_name"])) for i in document["images"]}
        for ann in document["annotations"]:
            x, y, w, h = (float(v) for v in ann["bbox"])
            doc, frame = images[ann["image_id"]]
            label = labels[ann["category_id"]]
            target.add(doc, frame, (x, y, x + w, y + h), label, **read_attributes(ann.get("attributes")))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationFileError(
            f"{where}: not a COCO instances file ({type(exc).__name__}: {exc})"
        ) from exc
