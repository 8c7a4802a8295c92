"""Video speed on 1280x720 H.264 clips at 10, 24 and 30 fps: plain decode + encode, Veil and deface.

Makes the clips from dev videos (scaled with PyAV, written under /tmp, never the repo): the street video
(one-by-one-person-detection.mp4) at its own 10 fps and re-timed to 24 fps, and the ASL clips joined (30 fps).
Then times each stage on each clip in the same run. "Veil default" is what `veil blur CLIP -o OUT` does; the
plain transcode uses the same encoder settings as Veil's default, so the two are comparable.

    .venv/bin/python bench/video_speed.py --frames 600 [--plate-every 2 3] [--plate-sides 960] [--deface]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from veil.engine.anonymizer import AnonymizeOptions, Anonymizer
from veil.engine.detections import Detections
from veil.engine.detectors.base import Detector, DetectorConfig, load_detector
from veil.engine.detectors.plates import plate_detector
from veil.engine.video import VideoOptions

DEV_VIDEOS = Path(__file__).resolve().parents[2] / "shared/data/dev/videos"
STREET = DEV_VIDEOS / "one-by-one-person-detection.mp4"
# (name, sources, frame rate to write; None keeps the source's)
CLIPS = [
    ("street 10 fps", [STREET], None),
    ("street 24 fps", [STREET], Fraction(24)),
    ("ASL 30 fps", sorted((DEV_VIDEOS / "asl_gestures").glob("*.mkv")), None),
]
SIZE_WH = (1280, 720)


def make_clip(sources: list[Path], target: Path, frames: int, rate: Fraction | None = None) -> int:
    """Scales up to `frames` frames of `sources`, one after another, to 1280x720 H.264 (CRF 18) at `rate`
    (None: the first source's frame rate)."""
    count = 0
    with av.open(str(sources[0])) as first:
        rate = rate or first.streams.video[0].average_rate or Fraction(25)
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


def timed(action: Callable[[], object], frames: int) -> tuple[float, float]:
    """Wall-clock frames/s and CPU milliseconds per frame (this process and its children)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    children_start = _children_cpu()
    action()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start + _children_cpu() - children_start
    return frames / elapsed, cpu * 1000 / frames


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def veil_run(
    clip: Path,
    out: Path,
    names: tuple[str, ...],
    video: VideoOptions,
    serial: bool = False,
    int8: bool = True,
    plate_side: int | None = None,
) -> Callable[[], object]:
    """`veil blur` on the clip; `serial` runs the detectors one after the other, as before issue 9; `int8`
    False runs the FP32 networks instead of the INT8 copies; `plate_side` sets the plate input's size."""
    options = AnonymizeOptions(video=video)
    config = DetectorConfig(device="cpu", int8=int8)
    anonymizer = Anonymizer.load(names, config, options)
    if plate_side is not None:
        video_config = replace(config, purpose="video")
        plate = plate_detector(video_config, max_side=plate_side)
        face = load_detector("face", video_config)
        anonymizer = Anonymizer(anonymizer.detectors, options, [face, plate])
    if serial:
        detectors = anonymizer.video_detectors
        anonymizer = Anonymizer(anonymizer.detectors, options, [OneAfterAnother(detectors)])
    return lambda: anonymizer.process_file(clip, out)


class OneAfterAnother:
    """Several detectors as one, run in turn (the video pipeline then has one detector to run)."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = detectors
        first = detectors[0].info
        self.info = replace(first, labels=tuple(label for d in detectors for label in d.info.labels))

    def detect(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections:
        return Detections.merge([d.detect(frame_bgr) for d in self.detectors])


def deface_run(clip: Path, out: Path, extra: list[str]) -> Callable[[], object]:
    deface = shutil.which("deface", path=str(Path(sys.executable).parent))
    if deface is None:
        raise SystemExit("deface is not installed in this environment")
    command = [deface, str(clip), "-o", str(out), *extra]
    return lambda: subprocess.run(command, check=True, capture_output=True)


def stages(args: argparse.Namespace, clip: Path, out: Path) -> list[tuple[str, Callable[[], object]]]:
    """What to time on one clip, in order; the plain transcode comes first (the ratios divide by it)."""
    base = VideoOptions()
    rows: list[tuple[str, Callable[[], object]]] = [
        ("plain decode + encode", lambda: plain_transcode(clip, out, base)),
        ("Veil default (faces + plates)", veil_run(clip, out, ("face", "plate"), base)),
        ("Veil default, detectors one after the other", veil_run(clip, out, ("face", "plate"), base, True)),
        ("Veil default, FP32 networks", veil_run(clip, out, ("face", "plate"), base, int8=False)),
        ("Veil, faces only", veil_run(clip, out, ("face",), base)),
    ]
    for every in args.plate_every:
        video = replace(base, key_frames_by_label={"plate": every})
        rows.append((f"Veil, plates every {every} key frames", veil_run(clip, out, ("face", "plate"), video)))
    for side in args.plate_sides:
        rows.append(
            (
                f"Veil default, plates at {side} px",
                veil_run(clip, out, ("face", "plate"), base, plate_side=side),
            )
        )
    for every in args.detect_every:
        video = replace(base, detect_every=every)
        rows.append((f"Veil default, detect every {every}", veil_run(clip, out, ("face", "plate"), video)))
    if args.deface:
        rows.append(("deface 1.5.0 default", deface_run(clip, out, [])))
        rows.append(("deface 1.5.0 --scale 640x360", deface_run(clip, out, ["--scale", "640x360"])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames of each clip")
    parser.add_argument("--plate-every", type=int, nargs="*", default=[], help="extra rows: plates every N")
    parser.add_argument(
        "--detect-every", type=int, nargs="*", default=[], help="extra rows: detection stride"
    )
    parser.add_argument(
        "--plate-sides", type=int, nargs="*", default=[], help="extra rows: plate input longer side"
    )
    parser.add_argument("--deface", action="store_true", help="also time deface")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/veil-bench"))
    args = parser.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    out = args.tmp / "out.mp4"
    base = VideoOptions()
    print(f"1280x720 clips of {args.frames} frames; encoder {base.codec} crf {base.crf} {base.preset}")
    print("cells: frames/s (speed / plain decode + encode), CPU ms per frame\n")
    results: dict[str, list[str]] = {}
    for name, sources, rate in CLIPS:
        clip = args.tmp / f"speed-{name.replace(' ', '-')}.mp4"
        frames = make_clip(sources, clip, args.frames, rate)
        transcode = 0.0
        for label, action in stages(args, clip, out):
            fps, cpu_ms = timed(action, frames)
            transcode = transcode or fps
            results.setdefault(label, []).append(f"{fps:.1f} ({fps / transcode:.2f}x), {cpu_ms:.0f} ms")
            print(
                f"{name}: {label}: {fps:.1f} frames/s, {cpu_ms:.1f} CPU ms/frame", file=sys.stderr, flush=True
            )
    print("| stage | " + " | ".join(name for name, _, _ in CLIPS) + " |")
    print("| --- |" + " --- |" * len(CLIPS))
    for label, cells in results.items():
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
