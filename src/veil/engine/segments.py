"""One video over several workers: segments cut at key frames, and the join of what each produced.

`plan_segments` cuts a video into `FrameRange`s; `anonymize_video(..., frames=segment)` runs the pipeline on
one of them, anywhere, into a file of its own; `join_segments` concatenates those files without decoding
them (`veil.engine.media.cut.join_parts`), copies the audio and subtitles once from the source, and joins
the segments' reports into the one a single run gives: each frame once, in order, and one track id for a
face that crosses a cut.

Each segment looks at frames on both sides of the frames it writes (`context_frames`): before them, so the
tracker already follows a face that is there at the cut; after them, so its last frames move towards the
same next key frame as in a single run. Two neighbours thus both see the frames around their cut, and a
track of one is the continuation of a track of the other when their boxes there overlap.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from veil.engine.boxes import box_iou
from veil.engine.detections import Detections
from veil.engine.media.cut import KeyFrames, join_parts, scan_key_frames
from veil.engine.report import FrameDetections, Report
from veil.engine.video import FrameRange, VideoOptions, context_frames

__all__ = ["join_reports", "join_segments", "plan_segments"]

# Boxes of one face, seen by the same detectors on the same frames by two segments, overlap almost fully
# on key frames; a mean IoU over the shared frames above this says two tracks are one face.
_SAME_TRACK_IOU = 0.5


def plan_segments(
    src: Path, min_segment_s: float, options: VideoOptions, min_video_s: float = 0.0
) -> tuple[FrameRange, ...]:
    """The segments to process `src` in: cut at key frames, each at least `min_segment_s` long.

    Args:
        src: the video.
        min_segment_s: the shortest segment, seconds; the last segment is never shorter either.
        options: the options the segments will run with (the detection stride sets how many frames each
            looks at around its own).
        min_video_s: a shorter video is not cut.

    Returns:
        The segments, in order; empty when the video is not cut: it is shorter than `min_video_s` or than
        two segments, has no key frame where a cut could go, or its container cannot be cut (see
        `scan_key_frames`).

    Raises:
        ValueError: `min_segment_s` is not positive.
        CorruptMediaError: `src` is not a readable video.
    """
    if min_segment_s <= 0:
        raise ValueError(f"min_segment_s must be positive, got {min_segment_s}")
    frames = scan_key_frames(src)
    if frames is None or not frames.key_indices or frames.key_indices[0] != 0:
        return ()
    if frames.seconds(frames.end_pts) < min_video_s:
        return ()
    cuts = _cuts(frames, min_segment_s)
    if len(cuts) < 3:
        return ()
    before, after = context_frames(frames.frame_rate, options)
    return tuple(_segment(frames, start, stop, before, after) for start, stop in pairwise(cuts))


def _cuts(frames: KeyFrames, min_segment_s: float) -> list[int]:
    """Frame indices where segments start, from 0, then the frame count."""
    cuts, last_s, total_s = [0], 0.0, frames.seconds(frames.end_pts)
    for index, pts in zip(frames.key_indices, frames.key_pts, strict=True):
        at_s = frames.seconds(pts)
        if index > 0 and at_s - last_s >= min_segment_s and total_s - at_s >= min_segment_s:
            cuts.append(index)
            last_s = at_s
    return [*cuts, frames.frame_count]


def _segment(frames: KeyFrames, start: int, stop: int, before: int, after: int) -> FrameRange:
    first = max(0, start - before)
    key = bisect.bisect_right(frames.key_indices, first) - 1  # the last key frame at or before `first`
    return FrameRange(
        seek_pts=frames.key_pts[key],
        seek_index=frames.key_indices[key],
        start=first,
        stop=min(frames.frame_count, stop + after),
        write_start=start,
        write_stop=stop,
        origin_pts=frames.origin_pts,
    )


def join_segments(
    src: Path,
    dst: Path | None,
    segments: Sequence[FrameRange],
    parts: Sequence[Path],
    reports: Sequence[Report],
    keep_audio: bool = True,
) -> Report:
    """Joins the outputs of every segment of `src` into `dst`, and their reports into one.

    Args:
        src: the video the segments were cut from; its audio and subtitles are copied.
        dst: the joined video, the container type of the parts; None only joins the reports.
        segments: the plan, in order.
        parts: each segment's written video (`anonymize_video` with `frames`); unused without `dst`.
        reports: each segment's report.
        keep_audio: copy the audio and subtitle streams of `src`.

    Returns:
        The report of the whole video (see `join_reports`).

    Raises:
        OutputError: the parts cannot be joined (see `join_parts`), or `dst` cannot be written.
        CorruptMediaError: a part or `src` cannot be read.
    """
    report = join_reports(segments, reports)
    if dst is not None:
        join_parts(src, parts, dst, keep_audio)
    return report


def join_reports(segments: Sequence[FrameRange], reports: Sequence[Report]) -> Report:
    """One report from the segments' reports: each frame from the segment that wrote it, and track ids
    renumbered over the whole video (in order of first appearance), a track that continues one of the
    segment before keeping its id.

    Args:
        segments: the plan, in order.
        reports: what `anonymize_video` returned for each segment (with the frames looked at around it).
    """
    if len(segments) != len(reports) or not reports:
        raise ValueError(f"{len(reports)} reports for {len(segments)} segments")
    renumbered: list[dict[int, int]] = []
    ids: dict[int, int] = {}
    next_id = 0
    for number, report in enumerate(reports):
        continued = {}
        if number:  # the frames both this segment and the one before looked at
            shared = range(segments[number].start, segments[number - 1].stop)
            continued = _continued_tracks(reports[number - 1], report, shared)
        earlier, ids = ids, {}
        for track in _tracks(report):
            if track in continued:
                ids[track] = earlier[continued[track]]
            else:
                ids[track], next_id = next_id, next_id + 1
        renumbered.append(ids)
    frames = [
        FrameDetections(frame.index, frame.time, _with_ids(frame.detections, ids))
        for segment, report, ids in zip(segments, reports, renumbered, strict=True)
        for frame in report.frames
        if segment.write_start <= frame.index < segment.write_stop
    ]
    media = replace(
        reports[-1].media,
        frame_count=sum(report.media.frame_count or 0 for report in reports),
        duration=reports[-1].media.duration,
    )
    return Report(media, _compact_ids(frames))


def _tracks(report: Report) -> list[int]:
    return sorted({int(t) for frame in report.frames for t in frame.detections.track_id if t >= 0})


def _continued_tracks(before: Report, after: Report, shared: range) -> dict[int, int]:
    """{track of `after`: track of `before` it continues}, matched greedily by the mean IoU of their
    boxes over the `shared` frames where either has one."""
    boxes_before = {f.index: f.detections for f in before.frames if f.index in shared}
    boxes_after = {f.index: f.detections for f in after.frames if f.index in shared}
    overlap: defaultdict[tuple[int, int], float] = defaultdict(float)
    for index in boxes_before.keys() & boxes_after.keys():
        a, b = boxes_before[index], boxes_after[index]
        iou = box_iou(a.xyxy, b.xyxy) * (a.label[:, None] == b.label[None, :])
        for i, j in zip(*np.nonzero(iou), strict=True):
            if a.track_id[i] >= 0 and b.track_id[j] >= 0:
                overlap[int(a.track_id[i]), int(b.track_id[j])] += float(iou[i, j])
    frames_before, frames_after = _frames_per_track(boxes_before), _frames_per_track(boxes_after)
    ranked = sorted(
        (
            (total / max(frames_before[first], frames_after[second]), first, second)
            for (first, second), total in overlap.items()
        ),
        reverse=True,
    )
    continued: dict[int, int] = {}
    for score, first, second in ranked:
        if score >= _SAME_TRACK_IOU and second not in continued and first not in continued.values():
            continued[second] = first
    return continued


def _frames_per_track(boxes: dict[int, Detections]) -> Counter[int]:
    return Counter(int(t) for detections in boxes.values() for t in set(detections.track_id.tolist()))


def _with_ids(detections: Detections, ids: dict[int, int]) -> Detections:
    track_id = np.array([ids.get(int(t), -1) for t in detections.track_id], np.int64)
    return Detections(detections.xyxy, detections.confidence, detections.label, track_id, detections.source)


def _compact_ids(frames: list[FrameDetections]) -> list[FrameDetections]:
    """Track ids 0, 1, 2... in order of first appearance, as a single run numbers them."""
    order: dict[int, int] = {}
    for frame in frames:
        for track in frame.detections.track_id.tolist():
            if track >= 0:
                order.setdefault(track, len(order))
    order[-1] = -1
    return [FrameDetections(f.index, f.time, _with_ids(f.detections, order)) for f in frames]
