"""What obscuring a key frame costs, and what it does to the pixels it should leave alone: the whole-frame
BGR round trip key frames took before, against the region-only edit every frame now takes.

Each of the first --frames frames of each clip is decoded, two boxes (a face and a plate, a tenth and a
twentieth of the frame wide) are obscured both ways, and the script prints the milliseconds per frame and
the mean absolute difference of the pixels outside the obscured region from the decoded frame (Y plane).

    .venv/bin/python bench/keyframe_render.py ../shared/data/dev/videos/*.mp4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import numpy as np

from veil.engine.detections import Detections
from veil.engine.media.video import edit_region, frame_from_bgr, frame_to_bgr
from veil.engine.redactors import obscure
from veil.engine.redactors.style import StylesByLabel
from veil.engine.video import _affected_region, _shifted


def two_boxes(width: int, height: int) -> Detections:
    face = [width * 0.40, height * 0.30, width * 0.50, height * 0.45]
    plate = [width * 0.10, height * 0.70, width * 0.15, height * 0.74]
    return Detections(
        np.array([face, plate], np.float32),
        np.array([0.9, 0.9], np.float32),
        np.array(["face", "plate"]),
        np.array([1, 2]),
        np.array(["detected", "detected"]),
    )


def whole_frame(frame: av.VideoFrame, boxes: Detections, styles: StylesByLabel) -> av.VideoFrame:
    return frame_from_bgr(obscure(frame_to_bgr(frame), boxes, styles), frame)


def region_only(frame: av.VideoFrame, boxes: Detections, styles: StylesByLabel) -> av.VideoFrame:
    roi = _affected_region(boxes, styles, frame.width, frame.height)
    edited = edit_region(frame, roi, lambda part, origin: obscure(part, _shifted(boxes, origin), styles))
    assert edited is not None, "the clip is not yuv420p"
    return edited


def measure(clip: Path, frames: int) -> None:
    styles = StylesByLabel()
    timings: dict[str, list[float]] = {"whole frame": [], "region only": []}
    shifts: dict[str, list[float]] = {"whole frame": [], "region only": []}
    with av.open(str(clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= frames:
                break
            boxes = two_boxes(frame.width, frame.height)
            x0, y0, x1, y1 = _affected_region(boxes, styles, frame.width, frame.height)
            outside = np.ones((frame.height, frame.width), bool)
            outside[max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2] = False
            luma = frame.to_ndarray()[: frame.height].astype(np.int16)
            for name, run in (("whole frame", whole_frame), ("region only", region_only)):
                started = time.perf_counter()
                out = run(frame, boxes, styles)
                timings[name].append(time.perf_counter() - started)
                shifted = np.abs(out.to_ndarray()[: frame.height].astype(np.int16) - luma)[outside]
                shifts[name].append(float(shifted.mean()))
    size = f"{frame.width}x{frame.height}"
    for name in timings:
        ms, moved = 1000 * float(np.median(timings[name])), float(np.mean(shifts[name]))
        print(f"{clip.name} {size} {name}: {ms:.1f} ms/frame, untouched pixels moved {moved:.3f} levels")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    for clip in args.clips:
        measure(clip, args.frames)


if __name__ == "__main__":
    main()
