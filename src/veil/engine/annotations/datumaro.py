"""Datumaro 1.0, Datumaro's own layout as CVAT exports it: `annotations/default.json` holding the label
categories and an item per frame with its `bbox` annotations, images under `images/default/`. Score,
source and track id go in each annotation's `attributes`; a video item's frame number in its `attr`."""

from __future__ import annotations

import json
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

__all__ = ["Datumaro"]

_ANNOTATIONS = "annotations/default.json"
_IMAGE_MEDIA = 2  # Datumaro's MediaType.IMAGE


@register
class Datumaro(AnnotationFormat):
    info = FormatInfo("Datumaro 1.0", "1.0", True, True, ("image", "video"), tracks=True, scores=True)

    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        labels = [{"name": label, "parent": "", "attributes": []} for label in LABELS]
        head = {
            "dm_format_version": "1.0",
            "media_type": _IMAGE_MEDIA,
            "infos": {},
            "categories": {"label": {"labels": labels, "label_groups": [], "attributes": ["occluded"]}},
        }
        with out.open_text(_ANNOTATIONS) as text:
            text.write(json.dumps(head)[:-1] + ', "items": [')
            text.lines(
                ("" if n == 0 else ", ") + json.dumps(_item(item))
                for n, item in enumerate(dataset.all_items())
            )
            text.write("]}")
        dataset.write_images(out, "images/default")

    def read(self, bundle: Bundle, target: Collector) -> None:
        names = [n for n in bundle.find(".json") if n.startswith("annotations/") or len(bundle.names()) == 1]
        if not names:
            raise AnnotationFileError(f"{bundle.name}: no annotations/*.json in it (Datumaro layout)")
        for name in names:
            where = f"{bundle.name}: {name}"
            try:
                document = json.loads(bundle.read_text(name))
                labels = [str(label["name"]) for label in document["categories"]["label"]["labels"]]
                items = document["items"]
                if not isinstance(items, list):
                    raise TypeError("items is not a list")
                for item in items:
                    _read_item(item, where, labels, target)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
                raise AnnotationFileError(
                    f"{where}: not a Datumaro file ({type(exc).__name__}: {exc})"
                ) from exc


def _item(item: Item) -> dict[str, Any]:
    d = item.boxes
    annotations = []
    for row in range(len(d)):
        x0, y0, x1, y1 = (round(float(v), 2) for v in d.xyxy[row])
        annotations.append(
            {
                "id": row,
                "type": "bbox",
                "attributes": {"occluded": False, **box_attributes(d, row)},
                "group": 0,
                "label_id": LABELS.index(str(d.label[row])),
                "z_order": 0,
                "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
            }
        )
    return {
        "id": item.id,
        "annotations": annotations,
        "attr": {"frame": item.frame},
        "image": {"path": item.image_path, "size": [item.height, item.width]},
    }


def _read_item(item: dict[str, Any], where: str, labels: list[str], target: Collector) -> None:
    document, frame = target.resolve(str(item["id"]))
    for ann in item.get("annotations", []):
        if ann.get("type") != "bbox":
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        label = labels[ann["label_id"]]
        target.add(
            document,
            frame,
            (x, y, x + w, y + h),
            label,
            **read_attributes(ann.get("attributes"), f"{where}: "),
        )
