"""What CVAT for images 1.1 and CVAT for video 1.1 share: the `<meta>` block declaring the labels and
their attributes, a box's attribute elements, and reading boxes back."""

from __future__ import annotations

from collections.abc import Iterator
from xml.etree.ElementTree import Element
from xml.sax.saxutils import quoteattr

from veil.engine.annotations.archive import Bundle, parse_xml
from veil.engine.annotations.base import LABELS
from veil.engine.annotations.fields import BoxAttributes, box_attributes, read_attributes
from veil.engine.detections import Detections
from veil.engine.errors import AnnotationFileError

__all__ = ["attribute_elements", "box_corners", "box_xml", "header", "label_of", "read_box", "read_roots"]

_COLORS = {"face": "#fa3253", "plate": "#33ddff"}
# name, input type, values: numbers as "min;max;step", selections one per line (CVAT's layout).
_ATTRIBUTES = (
    ("score", "number", "0;1;0.0001", "1"),
    ("source", "select", "detected\ntracked", "detected"),
)
_TRACK_ID = ("track_id", "number", "0;2147483647;1", "0")


def header(mode: str, frames: range, width: int, height: int, with_track_id: bool) -> str:
    """The XML declaration, `<version>` and `<meta>` for a task of `frames` in `mode` ("annotation" for
    images, "interpolation" for video); a step over 1 is written as CVAT's `step=N` frame filter."""
    attributes = (*_ATTRIBUTES, _TRACK_ID) if with_track_id else _ATTRIBUTES
    spec = "".join(
        f"<attribute><name>{name}</name><mutable>True</mutable><input_type>{kind}</input_type>"
        f"<default_value>{default}</default_value><values>{values}</values></attribute>"
        for name, kind, values, default in attributes
    )
    labels = "".join(
        f"<label><name>{label}</name><color>{_COLORS[label]}</color><type>rectangle</type>"
        f"<attributes>{spec}</attributes></label>"
        for label in LABELS
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n<version>1.1</version>\n'
        f"<meta><task><name>veil</name><size>{len(frames)}</size><mode>{mode}</mode><overlap>0</overlap>"
        f"<start_frame>0</start_frame><stop_frame>{frames[-1] if frames else 0}</stop_frame>"
        f"<frame_filter>{f'step={frames.step}' if frames.step > 1 else ''}</frame_filter>"
        f"<labels>{labels}</labels><original_size><width>{width}</width><height>{height}</height>"
        "</original_size></task></meta>\n"
    )


def box_corners(boxes: Detections, row: int) -> str:
    x0, y0, x1, y1 = (round(float(v), 2) for v in boxes.xyxy[row])
    return f'xtl="{x0}" ytl="{y0}" xbr="{x1}" ybr="{y1}"'


def attribute_elements(boxes: Detections, row: int, with_track_id: bool) -> str:
    attributes = box_attributes(boxes, row)
    if not with_track_id:
        attributes.pop("track_id", None)
    return "".join(f"<attribute name={quoteattr(k)}>{v}</attribute>" for k, v in attributes.items())


def box_xml(boxes: Detections, row: int, extra: str, with_track_id: bool) -> str:
    """One `<box>` element; `extra` holds the attributes a format adds (frame, outside, keyframe)."""
    return (
        f'<box label="{boxes.label[row]}" source="auto" occluded="0" {extra}{box_corners(boxes, row)} '
        f'z_order="0">{attribute_elements(boxes, row, with_track_id)}</box>\n'
    )


def read_roots(bundle: Bundle) -> Iterator[tuple[str, Element]]:
    """(member name, `<annotations>` root) of each XML file in the bundle.

    Raises:
        AnnotationFileError: no XML file, or one whose root is not `<annotations>`.
        UnsafeArchiveError: XML with a DTD or entities.
    """
    names = bundle.find(".xml")
    if not names:
        raise AnnotationFileError(f"{bundle.name}: no CVAT annotations.xml in it")
    for name in names:
        root = parse_xml(bundle.read(name), f"{bundle.name}: {name}")
        if root.tag != "annotations":
            raise AnnotationFileError(f"{bundle.name}: {name} is not a CVAT annotations file")
        yield name, root


def read_box(box: Element, where: str) -> tuple[tuple[float, float, float, float], BoxAttributes]:
    """A `<box>`'s corners and its score, source and track id attributes.

    Raises:
        AnnotationFileError: a corner is missing or not a number.
    """
    try:
        corners = (
            float(box.attrib["xtl"]),
            float(box.attrib["ytl"]),
            float(box.attrib["xbr"]),
            float(box.attrib["ybr"]),
        )
    except (KeyError, ValueError) as exc:
        raise AnnotationFileError(f"{where}: a box without numeric xtl, ytl, xbr, ybr ({exc})") from exc
    values = {a.get("name"): (a.text or "").strip() for a in box.iter("attribute")}
    return corners, read_attributes(values, f"{where}: ")


def label_of(element: Element, where: str) -> str:
    """The `label` attribute, checked later against the labels Veil knows."""
    label = element.get("label")
    if label is None:
        raise AnnotationFileError(f"{where}: a {element.tag} without a label")
    return label
