"""CVAT for images 1.1: `annotations.xml` with an `<image>` per item holding its `<box>`es, images under
`images/`. Score, source and track id are label attributes; CVAT for images has no tracks of its own."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from veil.engine.annotations.archive import Bundle, DatasetWriter
from veil.engine.annotations.base import AnnotationFormat, Collector, ExportDataset, FormatInfo, register
from veil.engine.annotations.cvat_xml import box_xml, header, label_of, read_box, read_roots
from veil.engine.errors import AnnotationFileError

__all__ = ["CvatImages"]


@register
class CvatImages(AnnotationFormat):
    info = FormatInfo("CVAT for images 1.1", "1.1", True, True, ("image", "video"), tracks=True, scores=True)

    def export(self, dataset: ExportDataset, out: DatasetWriter) -> None:
        size = sum(len(dataset.frames(d)) for d in dataset.documents)
        # CVAT's meta has one frame size; items carry their own, as tasks of photos do.
        first = dataset.documents[0].report.media if dataset.documents else None
        width, height = (first.width, first.height) if first else (0, 0)
        with out.open_text("annotations.xml") as text:
            text.write(header("annotation", range(size), width, height, True))
            for n, item in enumerate(dataset.all_items()):
                d = item.boxes
                text.write(
                    f'<image id="{n}" name={quoteattr(item.image_path)} width="{item.width}" '
                    f'height="{item.height}">\n'
                )
                text.lines(box_xml(d, row, "", True) for row in range(len(d)))
                text.write("</image>\n")
            text.write("</annotations>\n")
        dataset.write_images(out, "images")

    def read(self, bundle: Bundle, target: Collector) -> None:
        for name, root in read_roots(bundle):
            images = root.findall("image")
            if not images and root.findall("track"):
                raise AnnotationFileError(
                    f"{bundle.name}: {name} is CVAT for video (tracks), not CVAT for images"
                )
            for image in images:
                where = f"{bundle.name}: {name}: image {image.get('name')!r}"
                document, frame = target.resolve(image.get("name") or "")
                for box in image.iter("box"):
                    corners, attributes = read_box(box, where)
                    target.add(document, frame, corners, label_of(box, where), **attributes)
