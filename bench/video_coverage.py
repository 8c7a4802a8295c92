"""Coverage of the video pipeline against every-frame detection with the photo settings.

Clip: the ASL dev clips (one signer facing the camera) joined, optionally with a simulated camera pan
(--pan) so faces move; or any other clips given with --clips. Reference: the photo-purpose detector of
--label on every frame, boxes scoring >= --confident (0.5). Candidate: `anonymize_video` in detect-only mode
(same boxes as when writing) with the video-purpose detector, capped at --face-sides (0 = its default), with
detection every --strides frames (0 = the default, about every 0.3 s). A reference box counts as covered
when some box the pipeline obscures in the same frame (before mask scaling) has IoU >= 0.3 with it, or holds
>= 90% of its area. Coverage = covered / reference boxes. The reference is cached under /tmp between runs.

    .venv/bin/python bench/video_coverage.py --frames 400 --pan 60 --strides 0 1 4 12
    .venv/bin/python bench/video_coverage.py --label plate --clips ../shared/data/dev/videos/car-detection.mp4
    .venv/bin/python bench/video_coverage.py --label plate --photos plates_ro --pan 60 --plate-every 1 2 3

--photos builds the clip from a dev photo set instead (each photo held --hold frames while the pan window
moves across it, so plates move as in a hand-held or turning dashcam clip); --plate-every N runs the plate
detector on every N-th key frame only (`VideoOptions.key_frames_by_label`); both detectors always run.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from veil.engine.boxes import box_area, box_intersection, box_iou
from veil.engine.detectors.base import Detector, DetectorConfig, load_detector
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.detectors.plates import PlateCandidates, plate_detector
from veil.engine.media.image import read_image
from veil.engine.redactors.style import DEFAULT_STYLES
from veil.engine.report import Report
from veil.engine.video import VideoOptions, anonymize_video

DEV_DATA = Path(__file__).resolve().parents[2] / "shared/data/dev"
DEV_VIDEOS = DEV_DATA / "videos"
IOU_MIN = 0.3
INSIDE_MIN = 0.9

Boxes = npt.NDArray[np.float32]


def reference(clip: Path, label: str, frames: int, confident: float, cache: Path) -> list[Boxes]:
    """Confident full-resolution boxes of the first `frames` frames, one (N, 4) xyxy array per frame."""
    if cache.exists():
        data = np.load(cache)
        return [data[f"f{i}"] for i in range(int(data["count"]))]
    detector = load_detector(label, DetectorConfig(device="cpu", threshold=confident))
    boxes: list[Boxes] = []
    with av.open(str(clip)) as src:
        for index, frame in enumerate(src.decode(video=0)):
            if index >= frames:
                break
            boxes.append(detector.detect(frame.to_ndarray(format="bgr24")).xyxy)
    np.savez(cache, count=len(boxes), **{f"f{i}": b for i, b in enumerate(boxes)})
    return boxes


def build_clip(sources: list[Path], frames: int, pan: int, target: Path) -> None:
    """Joins the first `frames` frames of `sources` into one H.264 clip (CRF 18, under /tmp).

    With `pan` > 0 each frame is a 3/4-size window panning smoothly back and forth across the frame, one
    round trip every `pan` frames (as a hand-held camera would), so faces move and the tracker must follow.
    """
    with av.open(str(target), "w") as dst:
        stream = dst.add_stream("libx264", rate=30, options={"crf": "18", "preset": "veryfast"})
        stream.pix_fmt = "yuv420p"
        written = 0
        for source in sources:
            with av.open(str(source)) as src:
                for frame in src.decode(video=0):
                    if written >= frames:
                        break
                    image = frame.to_ndarray(format="bgr24")
                    if pan:
                        image = window(image, written / pan)
                    if written == 0:
                        stream.height, stream.width = image.shape[:2]
                    dst.mux(
                        stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24"))
                    )
                    written += 1
        dst.mux(stream.encode())


def build_photo_clip(dataset: str, frames: int, hold: int, pan: int, target: Path) -> None:
    """A 30 fps clip of the dataset's photos (sorted; those of the first one's size), each held `hold`
    frames under the moving pan window."""
    photos = sorted((DEV_DATA / "plates" / dataset).glob("*.jpg"))
    first = read_image(photos[0]).frame_bgr
    with av.open(str(target), "w") as dst:
        stream = dst.add_stream("libx264", rate=30, options={"crf": "18", "preset": "veryfast"})
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = window(first, 0).shape[:2]
        written = 0
        for path in photos:
            image = read_image(path).frame_bgr
            if image.shape != first.shape:
                continue
            for _ in range(hold):
                if written >= frames:
                    break
                moved = np.ascontiguousarray(window(image, written / pan if pan else 0))
                dst.mux(stream.encode(av.VideoFrame.from_ndarray(moved, format="bgr24")))
                written += 1
        dst.mux(stream.encode())


def window(image: npt.NDArray[np.uint8], cycles: float) -> npt.NDArray[np.uint8]:
    """A 3/4-size crop whose left edge swings across the frame and back (cosine) once per cycle."""
    height, width = image.shape[:2]
    crop_w, crop_h = width * 3 // 4, height * 3 // 4
    x = round((width - crop_w) * (1 - np.cos(2 * np.pi * cycles)) / 2)
    y = (height - crop_h) // 2
    return image[y : y + crop_h, x : x + crop_w]


def covered(ref: Boxes, out: Boxes) -> int:
    """Reference boxes matched by an output box under the IoU / inside rule."""
    if not len(ref) or not len(out):
        return 0
    iou = box_iou(ref, out)
    inside = box_intersection(ref, out) / np.maximum(box_area(ref), 1e-9)[:, None]
    return int(((iou >= IOU_MIN) | (inside >= INSIDE_MIN)).any(axis=1).sum())


def coverage(ref: list[Boxes], report: Report, label: str) -> tuple[float, int, int]:
    by_frame = {f.index: f.detections.with_labels(frozenset({label})).xyxy for f in report.frames}
    total = sum(len(r) for r in ref)
    hits = sum(covered(r, by_frame.get(i, np.empty((0, 4), np.float32))) for i, r in enumerate(ref))
    return (hits / total if total else 1.0), hits, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clips", type=Path, nargs="+", default=sorted((DEV_VIDEOS / "asl_gestures").glob("*.mkv"))
    )
    parser.add_argument("--photos", help="build the clip from this dev photo set (e.g. plates_ro) instead")
    parser.add_argument("--hold", type=int, default=30, help="with --photos: frames per photo")
    parser.add_argument(
        "--plate-every", type=int, nargs="+", default=[1], help="plates on every N-th key frame"
    )
    parser.add_argument("--unread", action="store_true", help="plates: candidates only, no reading")
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--label", choices=["face", "plate"], default="face")
    parser.add_argument("--pan", type=int, default=0, help="simulated camera pan: frames per round trip")
    parser.add_argument("--confident", type=float, default=0.5)
    parser.add_argument("--strides", type=int, nargs="+", default=[0], help="0 = the default")
    parser.add_argument("--face-sides", type=int, nargs="+", default=[0], help="0 = the default")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/veil-bench"))
    args = parser.parse_args()
    args.tmp.mkdir(parents=True, exist_ok=True)
    if args.photos:
        name = f"{args.photos}-hold{args.hold}-{args.frames}-pan{args.pan}"
    else:
        name = f"{args.clips[0].stem}-{len(args.clips)}-{args.frames}-pan{args.pan}"
    clip = args.tmp / f"cov-{name}.mp4"
    if not clip.exists() and args.photos:
        build_photo_clip(args.photos, args.frames, args.hold, args.pan, clip)
    elif not clip.exists():
        build_clip(args.clips, args.frames, args.pan, clip)
    cache = args.tmp / f"ref-{name}-{args.label}-{args.confident}.npz"
    ref = reference(clip, args.label, args.frames, args.confident, cache)
    confident = sum(len(r) for r in ref)
    print(
        f"{clip.name}, pan period {args.pan} frames: {len(ref)} frames, {confident} confident {args.label}s\n"
    )
    print("| stride | plates every | max side | coverage | covered / reference | boxes out | detect-only s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    config = DetectorConfig(device="cpu", purpose="video")
    for side in args.face_sides:
        face = CenterFaceDetector(config, max_side=side if side and args.label == "face" else None)
        plate_side = side if side and args.label == "plate" else None
        plate = (PlateCandidates if args.unread else plate_detector)(config, max_side=plate_side)
        detectors: list[Detector] = [face, plate]
        for stride, plate_every in itertools.product(args.strides, args.plate_every):
            options = VideoOptions(detect_every=stride or None, key_frames_by_label={"plate": plate_every})
            start = time.perf_counter()
            report = anonymize_video(clip, None, detectors, DEFAULT_STYLES, options)
            elapsed = time.perf_counter() - start
            share, hits, total = coverage(ref, report, args.label)
            boxes = sum(len(f.detections.with_labels(frozenset({args.label}))) for f in report.frames)
            row = f"| {stride or 'auto'} | {plate_every} | {side or 'default'} | {share:.3f} |"
            print(f"{row} {hits} / {total} | {boxes} | {elapsed:.1f} |", flush=True)


if __name__ == "__main__":
    main()
