"""One long video on one worker, and split over several (issue 10): wall time, CPU time, and what cutting and
joining cost; from these, the time on more workers.

Writes a synthetic 1280x720 H.264 video at 24 fps under /tmp (a moving gradient, drawn shapes crossing it,
light noise so the encoder has texture to code; AAC audio; x264's default key frames), never in the repo.
Then, with the same detectors and options:

- one worker: `anonymize_video` on the whole file, as a worker runs a task below `split_min_s`;
- N workers: `plan_segments` (the cut), the segments run by N processes at once (each loads its detectors
  once, as a worker does), then `join_segments` (the join) in this process.

CPU is user + system time of this process and every child. Figures go to stdout; nothing is written to
BENCHMARKS.md.

    .venv/bin/python bench/video_split.py [--minutes 10] [--workers 2] [--segment-s 30] [--detectors face]
"""

from __future__ import annotations

import argparse
import heapq
import os
import resource
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from veil.engine.anonymizer import Anonymizer
from veil.engine.report import Report
from veil.engine.segments import join_segments, plan_segments
from veil.engine.video import FrameRange, VideoOptions

SIZE_WH, RATE = (1280, 720), 24
WORK_DIR = Path("/tmp/veil-bench-video-split")


def make_video(path: Path, minutes: float) -> None:
    """The synthetic clip (see the module docstring): a window scrolling over a large noisy gradient, with
    squares drawn over it; cheap to draw, so writing it costs about what encoding does."""
    width, height = SIZE_WH
    frames = round(minutes * 60 * RATE)
    rng = np.random.default_rng(0)
    xs, ys = np.meshgrid(np.arange(2 * width), np.arange(2 * height))
    gradient = np.stack([xs % 256, ys % 256, (xs + ys) // 8 % 256], axis=2).astype(np.uint8)
    canvas = gradient + rng.integers(0, 12, gradient.shape, dtype=np.uint8)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=RATE, options={"crf": "20", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="mono")
        for index in range(frames):
            x0, y0 = (3 * index) % width, (2 * index) % height
            image = canvas[y0 : y0 + height, x0 : x0 + width].copy()
            for shape in range(4):  # squares crossing the frame at different speeds and heights
                x = (index * (3 + 2 * shape)) % (width + 120) - 120
                image[80 + 150 * shape : 200 + 150 * shape, max(x, 0) : max(x + 120, 0)] = (
                    60 * shape,
                    200,
                    90,
                )
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, RATE)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        _write_silence(container, audio, frames / RATE)


def _write_silence(container: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    for start in range(0, int(seconds * rate), chunk):
        samples = np.zeros((1, chunk), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode())


def cpu_s() -> float:
    """User + system seconds of this process and its children that ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_anonymizer: Anonymizer | None = None


def _load(detectors: Sequence[str]) -> None:
    global _anonymizer
    _anonymizer = Anonymizer.load(tuple(detectors))


def _segment(source: Path, part: Path, frames: FrameRange) -> tuple[Report, float]:
    """Runs one segment in a pool process; returns its report and wall seconds."""
    assert _anonymizer is not None
    started = time.perf_counter()
    report = _anonymizer.process_file(source, part, None, frames)
    return report, time.perf_counter() - started


def single(source: Path, detectors: Sequence[str]) -> dict[str, float]:
    anonymizer = Anonymizer.load(tuple(detectors))
    cpu, started = cpu_s(), time.perf_counter()
    report = anonymizer.process_file(source, WORK_DIR / "single.mp4")
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": cpu_s() - cpu,
        "frames": report.media.frame_count or 0,
    }


def split(source: Path, detectors: Sequence[str], workers: int, segment_s: float) -> dict[str, Any]:
    cpu, started = cpu_s(), time.perf_counter()
    segments = plan_segments(source, segment_s, VideoOptions())
    cut_s = time.perf_counter() - started
    parts = [WORK_DIR / f"part{n}.mp4" for n in range(len(segments))]
    with ProcessPoolExecutor(workers, initializer=_load, initargs=(detectors,)) as pool:
        list(pool.map(time.sleep, [1.0] * workers))  # every process up, detectors loaded, as a worker's are
        ready = time.perf_counter()
        done = list(pool.map(_segment, [source] * len(parts), parts, segments))
    run_s = time.perf_counter() - ready
    joined = time.perf_counter()
    report = join_segments(source, WORK_DIR / "joined.mp4", segments, parts, [r for r, _ in done])
    join_s = time.perf_counter() - joined
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": cpu_s() - cpu,
        "cut_s": cut_s,
        "segments_s": run_s,
        "join_s": join_s,
        "segments": len(segments),
        "segment_wall_s": [s for _, s in done],
        "looked_at": sum(s.stop - s.start for s in segments),
        "frames": report.media.frame_count or 0,
    }


def lpt(durations: Sequence[float], workers: int) -> float:
    """Makespan of running `durations` on `workers`, longest first, each to the least loaded worker."""
    loads = [0.0] * workers
    for duration in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + duration)
    return max(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--segment-s", type=float, default=30.0)
    parser.add_argument("--detectors", nargs="+", default=["face", "plate"])
    args = parser.parse_args()
    WORK_DIR.mkdir(exist_ok=True)
    source = WORK_DIR / f"synthetic-{args.minutes:g}min.mp4"
    if not source.exists():
        started = time.perf_counter()
        make_video(source, args.minutes)
        print(f"wrote {source} in {time.perf_counter() - started:.0f} s")
    print(f"load average before: {os.getloadavg()}")
    one = single(source, args.detectors)
    print(f"1 worker: {one['wall_s']:.1f} s wall, {one['cpu_s']:.1f} s CPU, {one['frames']:.0f} frames")
    many = split(source, args.detectors, args.workers, args.segment_s)
    print(f"{args.workers} workers: {many['wall_s']:.1f} s wall, {many['cpu_s']:.1f} s CPU")
    print(f"  cut {many['cut_s']:.2f} s, segments {many['segments_s']:.1f} s, join {many['join_s']:.2f} s")
    print(f"  {many['segments']} segments looking at {many['looked_at']} frames for {many['frames']} written")
    print(f"  segment walls: {', '.join(f'{s:.1f}' for s in many['segment_wall_s'])}")
    print(f"load average after: {os.getloadavg()}")
    # On a worker of its own, a segment takes its share of the single run (by frames looked at).
    per_frame = float(one["wall_s"]) / float(one["frames"])
    alone = [per_frame * (s.stop - s.start) for s in plan_segments(source, args.segment_s, VideoOptions())]
    for count in (2, 8):
        estimate = float(many["cut_s"]) + lpt(alone, count) + float(many["join_s"])
        speedup = float(one["wall_s"]) / estimate
        print(f"estimate, {count} workers of the single run's speed: {estimate:.1f} s ({speedup:.2f}x)")


if __name__ == "__main__":
    main()
