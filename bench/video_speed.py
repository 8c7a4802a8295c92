"""Video speed: plain decode, plain decode + encode, and `anonymize_video` with the real detectors.

Makes a 1280x720 H.264 clip from a dev video (scaled with PyAV, written under /tmp, never the repo), then
prints frames per second for each stage. Figures on a shared machine are noisy; compare rows of one run.

    .venv/bin/python bench/video_speed.py --frames 400 --strides 4 8 --face-sides 640 480
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import onnxruntime as ort

from veil.engine.detectors.base import Detector, DetectorConfig
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.detectors.plates import PlateDetector
from veil.engine.redactors.style import DEFAULT_STYLES
from veil.engine.video import VideoOptions, anonymize_video

DEV_VIDEO = Path(__file__).resolve().parents[2] / "shared/data/dev/videos/one-by-one-person-detection.mp4"
SIZE_WH = (1280, 720)


def make_clip(source: Path, target: Path, frames: int, options: VideoOptions) -> None:
    """Scales the first `frames` frames of `source` to 1280x720 H.264 at `options` crf/preset."""
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        rate = src.streams.video[0].average_rate or Fraction(25)
        stream = dst.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = *SIZE_WH, "yuv420p"
        for index, frame in enumerate(src.decode(video=0)):
            if index >= frames:
                break
            scaled = frame.reformat(width=SIZE_WH[0], height=SIZE_WH[1], format="yuv420p")
            scaled.pts = None
            dst.mux(stream.encode(scaled))
        dst.mux(stream.encode())


def plain_decode(clip: Path) -> int:
    with av.open(str(clip)) as src:
        src.streams.video[0].thread_type = "AUTO"
        return sum(1 for _ in src.decode(video=0))


def plain_transcode(clip: Path, out: Path, options: VideoOptions) -> int:
    """Decode and re-encode with the same encoder settings as the pipeline, one thread of Python."""
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        video = src.streams.video[0]
        video.thread_type = "AUTO"
        opts = {"crf": str(options.crf), "preset": options.preset}
        stream = dst.add_stream(options.codec, rate=video.average_rate, options=opts)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        count = 0
        for frame in src.decode(video):
            dst.mux(stream.encode(frame))
            count += 1
        dst.mux(stream.encode())
    return count


def no_spinning() -> None:
    """Makes every ONNX Runtime session built after this call park idle threads instead of spinning."""
    base = ort.SessionOptions

    class Quiet(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.add_session_config_entry("session.intra_op.allow_spinning", "0")

    ort.SessionOptions = Quiet


def detectors(face_side: int | None, plate_side: int | None) -> list[Detector]:
    found: list[Detector] = [CenterFaceDetector(DetectorConfig(device="cpu"), max_side=face_side)]
    if plate_side:
        found.append(PlateDetector(DetectorConfig(device="cpu"), max_side=plate_side))
    return found


def timed(label: str, action: Callable[[], object], frames: int) -> None:
    """Prints wall-clock frames/s and CPU milliseconds per frame (all threads of this process).

    CPU time hardly depends on what else the machine runs, so 2000 / (CPU ms per frame) estimates frames/s on
    two idle cores, assuming the stages overlap fully.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    action()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    cpu_ms = cpu * 1000 / frames
    speeds = f"{frames / elapsed:.1f} | {cpu_ms:.1f} | {2000 / cpu_ms:.0f}"
    print(f"| {label} | {frames} | {elapsed:.1f} | {speeds} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEV_VIDEO)
    parser.add_argument("--frames", type=int, default=400, help="frames of the source to use")
    parser.add_argument("--strides", type=int, nargs="+", default=[0], help="0 = the default (auto)")
    parser.add_argument("--face-sides", type=int, nargs="+", default=[640])
    parser.add_argument("--plate-side", type=int, default=640, help="0 runs faces only")
    parser.add_argument("--plate-key-every", type=int, default=1, help="plates on every N-th key frame")
    parser.add_argument("--spin", action="store_true", help="keep ONNX Runtime's default spinning threads")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/veil-bench"))
    args = parser.parse_args()
    if not args.spin:
        no_spinning()
    args.tmp.mkdir(parents=True, exist_ok=True)
    clip, out = args.tmp / "clip720.mp4", args.tmp / "out.mp4"
    base = VideoOptions()
    make_clip(args.source, clip, args.frames, base)
    frames = plain_decode(clip)
    print(f"clip: {frames} frames 1280x720; encoder {base.codec} crf {base.crf} preset {base.preset}\n")
    print("| stage | frames | seconds | frames/s | CPU ms/frame | est. frames/s, 2 idle cores |")
    print("| --- | --- | --- | --- | --- | --- |")
    timed("plain decode", lambda: plain_decode(clip), frames)
    timed("plain decode + encode", lambda: plain_transcode(clip, out, base), frames)
    timed("pipeline, no detectors", lambda: anonymize_video(clip, out, [], DEFAULT_STYLES, base), frames)
    for side in args.face_sides:
        found = detectors(side, args.plate_side or None)
        for stride in args.strides:
            by_label = {"plate": args.plate_key_every}
            options = VideoOptions(detect_every=stride or None, key_frames_by_label=by_label)
            plates = f"plate {args.plate_side or 'off'}" + (
                f" every {args.plate_key_every} keys" * bool(args.plate_side)
            )
            label = f"pipeline, face {side} + {plates}, stride {stride or 'auto'}"
            timed(label, lambda o=options, d=found: anonymize_video(clip, out, d, DEFAULT_STYLES, o), frames)


if __name__ == "__main__":
    main()
