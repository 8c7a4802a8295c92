"""Generated `veil.detections/1` reports for the annotation tests: a video with moving tracks, a gap, and
boxes with no track; photos with faces and plates."""

from __future__ import annotations

import numpy as np

from veil.engine.detections import Detections
from veil.engine.report import MediaInfo, Report

VIDEO_WH = (320, 240)


def video_report(frame_count: int = 40, fps: float = 25.0, tracks: int = 3, untracked: bool = True) -> Report:
    """Tracks 7, 8, ... move right a pixel and a fraction per frame; track 8 leaves frames 10-14 (a gap);
    an untracked plate shows on every fifth frame when `untracked`."""
    report = Report(MediaInfo("video", *VIDEO_WH, fps, frame_count, frame_count / fps))
    for frame in range(frame_count):
        rows = []
        for k in range(tracks):
            if k == 1 and 10 <= frame < 15:
                continue
            x, y = 10.0 + 1.3 * frame + 40 * k, 20.0 + 60 * k
            rows.append(([x, y, x + 24.5, y + 30.2], 0.5 + 0.1 * k, "face" if k % 2 == 0 else "plate", 7 + k))
        if untracked and frame % 5 == 0:
            rows.append(([200.0, 180.0, 260.4, 200.8], 0.91, "plate", -1))
        report.add(frame, frame / fps, _detections(rows, "tracked" if frame % 3 else "detected"))
    return report


def photo_report(width: int = 200, height: int = 150, boxes: int = 2) -> Report:
    report = Report(MediaInfo("image", width, height))
    rows = [
        ([5.0 + 30 * k, 6.5, 25.25 + 30 * k, 40.0], 0.8, ("face", "plate")[k % 2], -1) for k in range(boxes)
    ]
    report.add(0, 0.0, _detections(rows, "detected"))
    return report


def _detections(rows: list[tuple[list[float], float, str, int]], source: str) -> Detections:
    return Detections(
        np.array([r[0] for r in rows], np.float32),
        np.array([r[1] for r in rows], np.float32),
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows], np.int64),
        np.full(len(rows), source),
    )


def boxes_by_frame(report: Report) -> dict[int, list[tuple[str, int, tuple[float, ...]]]]:
    """frame -> sorted (label, track id, box) rows, to compare reports whatever the box order."""
    return {
        f.index: sorted(
            (str(label), int(track), tuple(float(v) for v in box))
            for label, track, box in zip(
                f.detections.label, f.detections.track_id, f.detections.xyxy, strict=True
            )
        )
        for f in report.frames
    }


def assert_same_boxes(got: Report, want: Report, tracks: bool = True, tolerance_px: float = 0.5) -> None:
    """Same frames, labels, (track ids) and boxes within `tolerance_px`."""
    got_frames, want_frames = boxes_by_frame(got), boxes_by_frame(want)
    assert list(got_frames) == list(want_frames)
    for frame, want_rows in want_frames.items():
        got_rows = got_frames[frame]
        if not tracks:
            got_rows = sorted((r[0], -1, r[2]) for r in got_rows)
            want_rows = sorted((r[0], -1, r[2]) for r in want_rows)
        assert [r[:2] for r in got_rows] == [r[:2] for r in want_rows], frame
        for g, w in zip(got_rows, want_rows, strict=True):
            assert np.abs(np.subtract(g[2], w[2])).max() <= tolerance_px, (frame, g, w)
