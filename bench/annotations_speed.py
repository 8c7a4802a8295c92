"""Annotation export and import speed on a 10-minute 30 fps video's tracks (issue 11).

The report is generated: 18,000 frames of 1920x1080, `--tracks` faces and plates in view on every frame,
each track living 10 s and leaving for a second halfway (a gap), scores and sources set. For each format,
in a fresh process of its own (so the peak memory is that step's): export without images, then import of
the file just written, checked to give back every box. Peak memory is the process's maximum resident
size, the generated report (held by both steps) included; "report only" gives that baseline.

With `--images-s N`, a 1080p H.264 video of N seconds is encoded first, and COCO 1.0 is exported with its
frames as JPEG: frames per second written.

    .venv/bin/python bench/annotations_speed.py
    .venv/bin/python bench/annotations_speed.py --formats "COCO 1.0" --images-s 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from veil.engine.annotations import MediaFiles, export_annotations, import_annotations
from veil.engine.detections import Detections
from veil.engine.report import MediaInfo, Report

WIDTH, HEIGHT, FPS = 1920, 1080, 30
TRACK_FRAMES = 300  # a track lives 10 s ...
GAP = range(150, 180)  # ... and leaves for a second halfway


def make_report(frames: int, tracks: int) -> Report:
    report = Report(MediaInfo("video", WIDTH, HEIGHT, float(FPS), frames, frames / FPS))
    for index in range(frames):
        rows = []
        for k in range(tracks):
            age = (index + 37 * k) % TRACK_FRAMES
            if age in GAP:
                continue
            track = k + tracks * ((index + 37 * k) // TRACK_FRAMES)
            x, y = 50 + 5.3 * age, 100 + 200 * (k % 4)
            rows.append(
                ([x, y, x + 60.4, y + 80.2], 0.5 + 0.4 * (age % 7) / 7, ("face", "plate")[k % 2], track)
            )
        report.add(
            index,
            index / FPS,
            Detections(
                np.array([r[0] for r in rows], np.float32),
                np.array([r[1] for r in rows], np.float32),
                np.array([r[2] for r in rows]),
                np.array([r[3] for r in rows], np.int64),
                np.full(len(rows), "tracked" if index % 5 else "detected"),
            ),
        )
    return report


def make_video(path: Path, frames: int) -> None:
    """A 1080p H.264 video: a gradient with a moving white square, as a camera's frames cost to encode."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        base = np.add.outer(np.linspace(0, 120, HEIGHT), np.linspace(0, 120, WIDTH)).astype(np.uint8)
        for index in range(frames):
            bgr = np.repeat(base[:, :, None], 3, axis=2)
            x = 40 + (7 * index) % (WIDTH - 200)
            bgr[400:520, x : x + 120] = 255
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def run_step(args: argparse.Namespace) -> dict[str, Any]:
    """One step in this process: report only, export, import or export with images."""
    report = make_report(args.frames, args.tracks)
    boxes = sum(len(f.detections) for f in report.frames)
    target = Path(args.target)
    start = time.perf_counter()
    if args.step == "export":
        export_annotations([("clip.mp4", report)], args.format, target)
    elif args.step == "import":
        back = import_annotations(target, args.format, [("clip.mp4", report.media)])["clip.mp4"]
        got = sum(len(f.detections) for f in back.frames)
        assert got == boxes, f"{args.format}: {got} boxes back of {boxes}"
    elif args.step == "images":
        images = MediaFiles({"clip.mp4": Path(args.video)})
        export_annotations([("clip.mp4", report)], args.format, target, images)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_mib": round(peak), "boxes": boxes}


def in_child(argv: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=10 * 60 * FPS)
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--formats", nargs="+", default=["CVAT for video 1.1", "MOT 1.1", "COCO 1.0"])
    parser.add_argument(
        "--images-s", type=float, default=0, help="seconds of 1080p video to export with images"
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args)))
        return
    common = ["--frames", str(args.frames), "--tracks", str(args.tracks)]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "out.zip"
        base = in_child([*common, "--step", "report", "--target", str(target)])
        print(f"report only: {args.frames} frames, {base['boxes']} boxes, peak {base['peak_mib']} MiB")
        for fmt in args.formats:
            exported = in_child([*common, "--step", "export", "--format", fmt, "--target", str(target)])
            size = target.stat().st_size / 1024**2
            imported = in_child([*common, "--step", "import", "--format", fmt, "--target", str(target)])
            print(
                f"{fmt}: export {exported['seconds']} s, peak {exported['peak_mib']} MiB, zip {size:.1f} MB; "
                f"import {imported['seconds']} s, peak {imported['peak_mib']} MiB"
            )
        if args.images_s:
            frames = round(args.images_s * FPS)
            video = Path(scratch) / "clip.mp4"
            make_video(video, frames)
            argv = ["--frames", str(frames), "--tracks", str(args.tracks), "--step", "images"]
            done = in_child([*argv, "--format", "COCO 1.0", "--target", str(target), "--video", str(video)])
            print(
                f"COCO 1.0 with images: {frames} 1080p frames in {done['seconds']} s, "
                f"{frames / done['seconds']:.1f} frames/s, peak {done['peak_mib']} MiB, "
                f"zip {target.stat().st_size / 1024**2:.0f} MB"
            )


if __name__ == "__main__":
    main()
