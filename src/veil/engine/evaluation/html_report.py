"""The `veil eval` report: one self-contained HTML page (inline CSS and SVG, no script, nothing fetched)
with recall per label and box height, a chart of recall by size, the photos and video frames with unmatched
detections, and every missed box, each shown as a small JPEG crop in `misses/` beside the page (up to
`max_crops`). A video is decoded once for its crops, up to the last frame with a miss, and only the frames
with misses are converted.
"""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.errors import OutputError
from veil.engine.evaluation.results import Evaluation, Miss
from veil.engine.media.image import read_image
from veil.engine.media.kinds import media_kind
from veil.engine.media.video import upright_frames
from veil.engine.report import Report

__all__ = ["MAX_CROPS", "MAX_TABLE_ROWS", "write_report"]

MAX_CROPS = 500
MAX_TABLE_ROWS = 500
"""Images listed with their unmatched detections, most first; a long video has a row per frame, and every
one is in results.json."""
CROP_SIDE_PX = 160
_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")
_MISS_BGR = (0, 0, 255)
_FOUND_BGR = (0, 220, 255)
_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:4px;font-size:12px;width:170px;vertical-align:top}
figure img{display:block;max-width:160px}.note{color:#a40}"""

Frame = npt.NDArray[np.uint8]


def write_report(
    evaluation: Evaluation,
    out_dir: Path,
    about: Mapping[str, str],
    media: Mapping[str, Path] | None = None,
    found: Mapping[str, Report | None] | None = None,
    max_crops: int = MAX_CROPS,
) -> Path:
    """Writes `out_dir/index.html`, `out_dir/results.json` (`Evaluation.to_dict()`) and, when `media`
    gives the photos' and videos' files, `out_dir/misses/*.jpg`; `about` lists what was compared (labels,
    format, detections) at the top of the page. Returns the page's path.

    Raises:
        OutputError: the folder or a file cannot be written. MediaError: a photo or video cannot be read.
    """
    try:
        (out_dir / "misses").mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / "misses").glob("[0-9][0-9][0-9][0-9][0-9].jpg"):  # an earlier run's crops
            stale.unlink()
        crops = _write_crops(evaluation.misses[:max_crops], out_dir, media, found) if media else {}
        results = json.dumps({"about": dict(about), **evaluation.to_dict()}, indent=1)
        (out_dir / "results.json").write_text(results + "\n", encoding="utf-8")
        page = out_dir / "index.html"
        page.write_text(_page(evaluation, about, crops, media is not None, max_crops), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write the report in {out_dir}: {exc.strerror or exc}") from exc
    return page


def _write_crops(
    misses: Sequence[Miss],
    out_dir: Path,
    media: Mapping[str, Path],
    found: Mapping[str, Report | None] | None,
) -> dict[int, str]:
    """Crops each miss with some context around it, outlined in red, detections of its label in yellow;
    each file is decoded once. Returns the crop's relative path by index into `misses`."""
    crops: dict[int, str] = {}
    by_frame: dict[str, dict[int | None, list[int]]] = {}
    for index, miss in enumerate(misses):
        by_frame.setdefault(miss.image, {}).setdefault(miss.frame, []).append(index)
    for image, indices in by_frame.items():
        report = (found or {}).get(image)
        detected = {f.index: f.detections for f in report.frames} if report else {}
        for frame, frame_bgr in _frames(media[image], indices):
            shown = detected.get(frame or 0)
            for index in indices[frame]:
                miss = misses[index]
                near = [] if shown is None else [shown[shown.label == miss.label].xyxy]
                name = f"misses/{index + 1:05d}.jpg"
                (out_dir / name).write_bytes(_crop(frame_bgr, miss.xyxy, near))
                crops[index] = name
    return crops


def _frames(path: Path, frames: Collection[int | None]) -> Iterator[tuple[int | None, Frame]]:
    """The upright frames with misses: a photo's one (frame None), or those of a video in one pass."""
    if media_kind(path) == "image":
        yield None, read_image(path).frame_bgr
    else:
        yield from upright_frames(path, [frame for frame in frames if frame is not None])


def _crop(frame: Frame, xyxy: Sequence[float], detections: Sequence[npt.NDArray[np.float32]]) -> bytes:
    """JPEG of the box and a margin of half its size (at least 8 px), scaled to CROP_SIDE_PX on its longer
    side, so that a 10 px face and a 300 px one show alike."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = xyxy
    margin = max(x1 - x0, y1 - y0) / 2 + 8
    left, top = int(max(x0 - margin, 0)), int(max(y0 - margin, 0))
    right, bottom = int(min(x1 + margin, width)), int(min(y1 + margin, height))
    scale = CROP_SIDE_PX / max(right - left, bottom - top, 1)
    shrink = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    crop = np.ascontiguousarray(
        cv2.resize(frame[top:bottom, left:right], None, fx=scale, fy=scale, interpolation=shrink), np.uint8
    )
    found = np.concatenate([*detections, np.empty((0, 4), np.float32)])
    for boxes, colour, line_px in ((found, _FOUND_BGR, 1), (np.array([xyxy]), _MISS_BGR, 2)):
        for bx0, by0, bx1, by1 in boxes.tolist():
            corner0 = (round((bx0 - left) * scale), round((by0 - top) * scale))
            corner1 = (round((bx1 - left) * scale), round((by1 - top) * scale))
            cv2.rectangle(crop, corner0, corner1, colour, line_px)
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OutputError("a crop of a missed box cannot be written as JPEG")
    return data.tobytes()


def _page(
    evaluation: Evaluation,
    about: Mapping[str, str],
    crops: Mapping[int, str],
    has_media: bool,
    max_crops: int,
) -> str:
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Veil evaluation</title>"
        f"<style>{_CSS}</style></head><body><h1>Veil's detections against your labels</h1>",
        "<ul>" + "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in about.items()) + "</ul>",
        _summary_table(evaluation),
        "<h2>Recall by box height</h2>",
        _recall_chart(evaluation),
        _notes(evaluation),
        _unmatched_table(evaluation),
        _misses(evaluation, crops, has_media, max_crops),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _summary_table(evaluation: Evaluation) -> str:
    buckets = [name for name, _, _ in evaluation.buckets]
    head = "".join(f"<th>{_e(b)} px</th>" for b in buckets)
    rows = []
    for label, tally in evaluation.tallies.items():
        cells = "".join(
            f"<td>{_percent(tally.recall(b))} <small>({tally.hits[b]}/{tally.boxes[b]})</small></td>"
            for b in buckets
        )
        per_image = tally.unmatched / max(tally.images, 1)
        rows.append(
            f"<tr><td>{_e(label)}</td><td>{tally.boxes['all']}</td><td>{tally.hits['all']}</td>"
            f"<td>{_percent(tally.recall('all'))}</td>{cells}<td>{tally.detections}</td>"
            f"<td>{tally.unmatched}</td><td>{per_image:.2f}</td></tr>"
        )
    return (
        f"<p>{_e(evaluation.counted)}. A labelled box is found when a detection of its label "
        "overlaps it at IoU 0.3 or more (each detection claims one box, the highest scores first).</p>"
        f"<table><tr><th>label</th><th>boxes</th><th>found</th><th>recall</th>{head}<th>detections</th>"
        f"<th>unmatched</th><th>unmatched per image</th></tr>{''.join(rows)}</table>"
    )


def _recall_chart(evaluation: Evaluation, width: int = 560, height: int = 260) -> str:
    """An inline SVG bar chart: per height bucket, one bar per label, its recall and box count."""
    labels = list(evaluation.tallies)
    buckets = [name for name, _, _ in evaluation.buckets]
    left, bottom, top = 40, 40, 20
    plot_w, plot_h = width - left - 10, height - bottom - top
    group_w = plot_w / max(len(buckets), 1)
    bar_w = group_w * 0.8 / max(len(labels), 1)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="recall by box height" font-size="11" font-family="sans-serif">']  # fmt: skip
    for tick in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_h * (1 - tick)
        svg.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick:.0%}</text>')  # fmt: skip
    for g, bucket in enumerate(buckets):
        x_group = left + g * group_w + group_w * 0.1
        svg.append(f'<text x="{left + (g + 0.5) * group_w:.1f}" y="{height - bottom + 16}" '
                   f'text-anchor="middle">{_e(bucket)} px</text>')  # fmt: skip
        for i, label in enumerate(labels):
            svg.append(
                _bar(evaluation, label, bucket, x_group + i * bar_w, bar_w, top, plot_h, _COLOURS[i % 4])
            )
    for i, label in enumerate(labels):
        x = left + i * 90
        svg.append(f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{_COLOURS[i % 4]}"/>'
                   f'<text x="{x + 14}" y="{height - 5}">{_e(label)}</text>')  # fmt: skip
    return "".join(svg) + "</svg>"


def _bar(
    evaluation: Evaluation, label: str, bucket: str, x: float, w: float, top: int, plot_h: int, colour: str
) -> str:
    tally = evaluation.tallies[label]
    recall = tally.recall(bucket)
    if recall is None:
        return (
            f'<text x="{x + w / 2:.1f}" y="{top + plot_h - 4}" text-anchor="middle" fill="#999">none</text>'
        )
    bar_h = plot_h * recall
    y = top + plot_h - bar_h
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w - 2:.1f}" height="{bar_h:.1f}" fill="{colour}">'
        f"<title>{_e(label)} {_e(bucket)} px: {tally.hits[bucket]} of {tally.boxes[bucket]}</title></rect>"
        f'<text x="{x + w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{recall:.0%}</text>'
    )


def _notes(evaluation: Evaluation) -> str:
    notes = []
    missing = evaluation.without_detections
    if missing:
        examples = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        notes.append(f"{len(missing)} files had no detections file and count as nothing found: {examples}")
    for label, count in sorted(evaluation.ignored.items()):
        notes.append(f"{count} detections of {label!r} ignored: no box of that label is labelled")
    return "".join(f'<p class="note">{_e(note)}</p>' for note in notes)


def _unmatched_table(evaluation: Evaluation) -> str:
    images = sorted(
        (i for i in evaluation.images if i.unmatched), key=lambda i: (-i.unmatched, i.image, i.frame or 0)
    )
    rows = "".join(
        f"<tr><td>{_e(i.where)}</td><td>{i.unmatched}</td><td>{i.detections}</td><td>{i.found}/{i.boxes}</td></tr>"
        for i in images[:MAX_TABLE_ROWS]
    )
    listed = (
        f" The {MAX_TABLE_ROWS} with the most are listed; results.json has them all."
        if len(images) > MAX_TABLE_ROWS
        else ""
    )
    return (
        f"<h2>Unmatched detections per image</h2><p>{len(images)} photos or video frames have detections "
        f"that overlap no labelled box (a face or plate nobody labelled, or a false alarm).{listed}</p>"
        + (
            f"<table><tr><th>image</th><th>unmatched</th><th>detections</th><th>found</th></tr>{rows}</table>"
            if rows
            else ""
        )
    )


def _misses(evaluation: Evaluation, crops: Mapping[int, str], has_media: bool, max_crops: int) -> str:
    misses = evaluation.misses
    parts = [f"<h2>Missed boxes ({len(misses)})</h2>"]
    figures = []
    for index, miss in enumerate(misses):
        if index in crops:
            figures.append(
                f'<figure><img src="{_e(crops[index])}" alt="missed {_e(miss.label)}">'
                f"<figcaption>{_e(miss.where)}<br>{_e(miss.label)}, {miss.height:.0f} px high"
                "</figcaption></figure>"
            )
    parts.append(f'<div class="crops">{"".join(figures)}</div>')
    if not has_media:
        parts.append(
            '<p class="note">No crops: give the labelled photos and videos (--images) to see each miss.</p>'
        )
    elif len(misses) > max_crops:
        parts.append(
            f'<p class="note">Crops of the first {max_crops} misses only; '
            f"all {len(misses)} are listed below.</p>"
        )
    rows = "".join(
        f"<tr><td>{_e(m.where)}</td><td>{_e(m.label)}</td><td>{_e(m.bucket)}</td><td>{m.height:.1f}</td>"
        f"<td>{', '.join(f'{v:.1f}' for v in m.xyxy)}</td></tr>"
        for m in misses
    )
    parts.append(
        "<table><tr><th>image</th><th>label</th><th>height bucket</th><th>height px</th>"
        f"<th>box xyxy</th></tr>{rows}</table>"
    )
    return "".join(parts)
