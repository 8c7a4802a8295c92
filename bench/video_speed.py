"""Video speed on a 1280x720 H.264 clip: plain decode, plain decode + encode, Veil and deface.

Makes the clip from a dev video (scaled with PyAV, written under /tmp, never the repo), then times each
stage in the same run. "Veil default" is what `veil blur CLIP -o OUT` does; the plain transcode uses the same
encoder settings as Veil's default, so the two are comparable.

    .venv/bin/python bench/video_speed.py --frames 600 [--detect-every 0 6 12] [--no-deface]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from veil.engine.anonymizer import AnonymizeOptions, Anonymizer
from veil.engine.detectors.base import DetectorConfig
from veil.engine.video import VideoOptions

DEV_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/dev/videos/one-by-one-person-detection.mp4"
SIZE_WH = (1280, 720)


def make_clip(sources: list[Path], target: Path, frames: int) -> int:
    """Scales up to `frames` frames of `sources`, one after another, to 1280x720 H.264 (CRF 18) at the first
    source's frame rate."""
    count = 0
    with av.open(str(sources[0])) as first:
        rate = first.streams.video[0].average_rate or Fraction(25)
    with av.open(str(target), "w") as dst:
        stream = dst.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = *SIZE_WH, "yuv420p"
        for source in sources:
            with av.open(str(source)) as src:
                for frame in src.decode(video=0):
                    if count >= frames:
                        break
                    scaled = frame.reformat(width=SIZE_WH[0], height=SIZE_WH[1], format="yuv420p")
                    scaled.pts, scaled.time_base = count, 1 / rate
                    dst.mux(stream.encode(scaled))
                    count += 1
        dst.mux(stream.encode())
    return count


def plain_decode(clip: Path) -> None:
    with av.open(str(clip)) as src:
        src.streams.video[0].thread_type = "AUTO"
        for _ in src.decode(video=0):
            pass


def plain_transcode(clip: Path, out: Path, options: VideoOptions) -> None:
    """Decode and re-encode with Veil's encoder settings, nothing else."""
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        video = src.streams.video[0]
        video.thread_type = "AUTO"
        settings = {"crf": str(options.crf), "preset": options.preset}
        stream = dst.add_stream(options.codec, rate=video.average_rate, options=settings)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for frame in src.decode(video):
            dst.mux(stream.encode(frame))
        dst.mux(stream.encode())


def timed(label: str, action: Callable[[], object], frames: int) -> None:
    """Prints wall-clock frames/s and CPU milliseconds per frame (this process and its children)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    children_start = _children_cpu()
    action()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start + _children_cpu() - children_start
    print(f"| {label} | {frames / elapsed:.1f} | {cpu * 1000 / frames:.1f} |", flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def veil_run(clip: Path, out: Path, names: tuple[str, ...], detect_every: int | None) -> Callable[[], object]:
    options = AnonymizeOptions(video=VideoOptions(detect_every=detect_every))
    anonymizer = Anonymizer.load(names, DetectorConfig(device="cpu"), options)
    return lambda: anonymizer.process_file(clip, out)


def deface_run(clip: Path, out: Path, extra: list[str]) -> Callable[[], object]:
    deface = shutil.which("deface", path=str(Path(sys.executable).parent))
    if deface is None:
        raise SystemExit("deface is not installed in this environment")
    command = [deface, str(clip), "-o", str(out), *extra]
    return lambda: subprocess.run(command, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, nargs="+", default=[DEV_VIDEO], help="joined in order")
    parser.add_argument("--frames", type=int, default=600, help="frames of the source to use")
    parser.add_argument("--detect-every", type=int, nargs="*", default=[], help="extra Veil rows; 0 = auto")
    parser.add_argument("--no-deface", action="store_true")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/veil-bench"))
    args = parser.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    clip, out = args.tmp / "clip720.mp4", args.tmp / "out.mp4"
    frames = make_clip(args.source, clip, args.frames)
    with av.open(str(clip)) as probe:
        rate = probe.streams.video[0].average_rate
    base = VideoOptions()
    encoder = f"{base.codec} crf {base.crf} {base.preset}"
    print(f"clip: {frames} frames, 1280x720, {float(rate or 0):g} fps; encoder {encoder}\n")
    print("| stage | frames/s | CPU ms/frame |\n| --- | --- | --- |")
    timed("plain decode", lambda: plain_decode(clip), frames)
    timed("plain decode + encode", lambda: plain_transcode(clip, out, base), frames)
    timed("Veil default (faces + plates)", veil_run(clip, out, ("face", "plate"), None), frames)
    timed("Veil, faces only", veil_run(clip, out, ("face",), None), frames)
    for every in args.detect_every:
        label = f"Veil default, detect every {every or 'auto'}"
        timed(label, veil_run(clip, out, ("face", "plate"), every or None), frames)
    if not args.no_deface:
        timed("deface 1.5.0 default", deface_run(clip, out, []), frames)
        timed("deface 1.5.0 --scale 640x360", deface_run(clip, out, ["--scale", "640x360"]), frames)


if __name__ == "__main__":
    main()
