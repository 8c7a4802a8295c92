"""Face coverage of the video pipeline against every-frame, full-resolution detection.

Reference: CenterFace on every frame at the clip's full resolution, boxes scoring >= --confident (0.5).
Candidate: `anonymize_video` in detect-only mode (same boxes as when writing) with CenterFace capped at
--face-sides and detection every --strides frames. A reference box counts as covered when some box the
pipeline obscures in the same frame (before mask scaling) has IoU >= 0.3 with it, or holds >= 90% of its
area. Coverage = covered / reference boxes. The reference is cached under /tmp between runs.

    .venv/bin/python bench/video_coverage.py --frames 400 --strides 1 2 4 8 --face-sides 640 480
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.redactors.style import DEFAULT_STYLES
from veil.engine.report import Report
from veil.engine.video import VideoOptions, anonymize_video

DEV_VIDEOS = Path(__file__).resolve().parents[2] / "shared/data/dev/videos"
IOU_MIN = 0.3
INSIDE_MIN = 0.9

Boxes = npt.NDArray[np.float32]


def reference(clip: Path, frames: int, confident: float, cache: Path) -> list[Boxes]:
    """Confident full-resolution boxes of the first `frames` frames, one (N, 4) xyxy array per frame."""
    if cache.exists():
        data = np.load(cache)
        return [data[f"f{i}"] for i in range(int(data["count"]))]
    detector = CenterFaceDetector(DetectorConfig(device="cpu", threshold=confident))
    boxes: list[Boxes] = []
    with av.open(str(clip)) as src:
        for index, frame in enumerate(src.decode(video=0)):
            if index >= frames:
                break
            boxes.append(detector.detect(frame.to_ndarray(format="bgr24")).xyxy)
    np.savez(cache, count=len(boxes), **{f"f{i}": b for i, b in enumerate(boxes)})
    return boxes


def trim(clip: Path, frames: int, target: Path) -> None:
    """Copies the first `frames` frames' packets so the pipeline sees exactly the reference frames."""
    with av.open(str(clip)) as src, av.open(str(target), "w") as dst:
        video = src.streams.video[0]
        out = dst.add_stream_from_template(video)
        decoded = 0
        for packet in src.demux(video):
            if packet.dts is None:
                continue
            if packet.is_keyframe and decoded >= frames:
                break
            decoded += 1
            packet.stream = out
            dst.mux(packet)


def covered(ref: Boxes, out: Boxes) -> int:
    """Reference boxes matched by an output box under the IoU / inside rule."""
    if not len(ref) or not len(out):
        return 0
    top_left = np.maximum(ref[:, None, :2], out[None, :, :2])
    bottom_right = np.minimum(ref[:, None, 2:], out[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_ref = np.prod(ref[:, 2:] - ref[:, :2], axis=1)[:, None]
    area_out = np.prod(out[:, 2:] - out[:, :2], axis=1)[None, :]
    iou = inter / np.maximum(area_ref + area_out - inter, 1e-9)
    inside = inter / np.maximum(area_ref, 1e-9)
    return int(((iou >= IOU_MIN) | (inside >= INSIDE_MIN)).any(axis=1).sum())


def coverage(ref: list[Boxes], report: Report) -> tuple[float, int, int]:
    by_frame = {f.index: f.detections.xyxy for f in report.frames}
    total = sum(len(r) for r in ref)
    hits = sum(covered(r, by_frame.get(i, np.empty((0, 4), np.float32))) for i, r in enumerate(ref))
    return (hits / total if total else 1.0), hits, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEV_VIDEOS / "one-by-one-person-detection.mp4")
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--confident", type=float, default=0.5)
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--face-sides", type=int, nargs="+", default=[640])
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/veil-bench"))
    args = parser.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    cache = args.tmp / f"ref-{args.clip.stem}-{args.frames}-{args.confident}.npz"
    ref = reference(args.clip, args.frames, args.confident, cache)
    trimmed = args.tmp / f"trim-{args.clip.stem}{args.clip.suffix}"
    trim(args.clip, args.frames, trimmed)
    print(f"{args.clip.name}: {len(ref)} frames, {sum(len(r) for r in ref)} confident reference faces\n")
    print("| stride | face max side | coverage | covered / reference | boxes out | detect-only s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for side in args.face_sides:
        detector = CenterFaceDetector(DetectorConfig(device="cpu"), max_side=side)
        for stride in args.strides:
            start = time.perf_counter()
            report = anonymize_video(trimmed, None, [detector], DEFAULT_STYLES, VideoOptions(detect_every=stride))
            elapsed = time.perf_counter() - start
            share, hits, total = coverage(ref, report)
            boxes = sum(len(f.detections) for f in report.frames)
            print(f"| {stride} | {side} | {share:.3f} | {hits} / {total} | {boxes} | {elapsed:.1f} |", flush=True)


if __name__ == "__main__":
    main()
