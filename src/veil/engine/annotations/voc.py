"""PASCAL VOC 1.1 as CVAT writes it (through Datumaro): an `Annotations/<item>.xml` per item,
`ImageSets/Main/default.txt` listing the items, `labelmap.txt`, images under `JPEGImages/`. Corners are
pixels as floats; score, source and track id go in each object's `<attributes>`."""

from __future__ import annotations

from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from veil.engine.annotations.archive import Bundle, DatasetWriter, parse_xml
from veil.engine.annotations.base import (
    AnnotationFormat,
    Collector,
    ExportDataset,
    FormatInfo,
    Item,
    register,
)
from veil.engine.annotations.fields import box_attributes, read_attributes
from veil.engine.errors import AnnotationFileError

__all__ = ["PascalVoc"]

_LABELMAP = "# label:color_rgb:parts:actions\nface:250,50,83::\nplate:51,221,255::\n"


@register
class PascalVoc(AnnotationFormat):
    info = FormatInfo("PASCAL VOC 1.1", "1.1", True, True, ("image", "video"), tracks=True, scores=True)

    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        out.write_bytes("labelmap.txt", _LABELMAP.encode())
        with out.open_text("ImageSets/Main/default.txt") as text:
            text.lines(f"{item.id}\n" for item in dataset.all_items())
        for item in dataset.all_items():
            out.write_bytes(f"Annotations/{item.id}.xml", _item_xml(item).encode())
        dataset.write_images(out, "JPEGImages")

    def read(self, bundle: Bundle, target: Collector) -> None:
        names = [n for n in bundle.names() if n.startswith("Annotations/") and n.endswith(".xml")]
        if not names:
            raise AnnotationFileError(f"{bundle.name}: no Annotations/*.xml in it (PASCAL VOC layout)")
        for name in names:
            where = f"{bundle.name}: {name}"
            root = parse_xml(bundle.read(name), where)
            if root.tag != "annotation":
                raise AnnotationFileError(f"{where}: not a PASCAL VOC annotation")
            document, frame = target.resolve(name.removeprefix("Annotations/").removesuffix(".xml"))
            for obj in root.iter("object"):
                _read_object(obj, where, document, frame, target)


def _item_xml(item: Item) -> str:
    d = item.boxes
    objects = []
    for row in range(len(d)):
        x0, y0, x1, y1 = (round(float(v), 2) for v in d.xyxy[row])
        attributes = "".join(
            f"<attribute><name>{k}</name><value>{v}</value></attribute>"
            for k, v in box_attributes(d, row).items()
        )
        objects.append(
            f"<object><name>{d.label[row]}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>0</difficult><occluded>0</occluded><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox><attributes>{attributes}</attributes></object>"
        )
    return (
        f"<annotation><folder></folder><filename>{escape(item.image_path)}</filename><source>"
        "<database>Unknown</database><annotation>Unknown</annotation><image>Unknown</image></source>"
        f"<size><width>{item.width}</width><height>{item.height}</height><depth></depth></size>"
        f"<segmented>0</segmented>{''.join(objects)}</annotation>\n"
    )


def _read_object(obj: Element, where: str, document: str, frame: int, target: Collector) -> None:
    label = (obj.findtext("name") or "").strip()
    try:
        corners = tuple(float(obj.findtext(f"bndbox/{k}") or "") for k in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError as exc:
        raise AnnotationFileError(f"{where}: an object without numeric bndbox corners") from exc
    values = {a.findtext("name"): (a.findtext("value") or "").strip() for a in obj.iter("attribute")}
    target.add(document, frame, corners, label, **read_attributes(values, f"{where}: "))
