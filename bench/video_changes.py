"""How much of each key frame changed since the last one: the most that skipping unchanged regions could save.

Issue 9's "skip detection where nothing changed" lever, measured before building it. Each key frame (about
every 0.3 s, as the default stride) is cut into tiles; a tile changed when its mean absolute grey difference
from the same tile of the previous key frame exceeds --threshold grey levels. Detection limited to changed
tiles (with their neighbours, so that an object entering a tile is seen whole) would cost at most the printed
share of a full pass.

    .venv/bin/python bench/video_changes.py ../shared/data/dev/videos/*.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.video import DETECT_INTERVAL_S


def changed_share(clip: Path, tile: int, threshold: float, frames: int) -> tuple[float, float, int]:
    """Mean share of changed tiles, and of changed tiles and their 8 neighbours, over the key frames."""
    shares, grown_shares = [], []
    previous: npt.NDArray[np.float32] | None = None
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        stride = max(1, round(float(stream.average_rate or 25) * DETECT_INTERVAL_S))
        for index, frame in enumerate(src.decode(stream)):
            if index >= frames:
                break
            if index % stride:
                continue
            grey = frame.to_ndarray(format="gray").astype(np.float32)
            if previous is not None:
                rows, cols = grey.shape[0] // tile, grey.shape[1] // tile
                diff = np.abs(grey - previous)[: rows * tile, : cols * tile]
                changed = diff.reshape(rows, tile, cols, tile).mean(axis=(1, 3)) > threshold
                grown = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
                shares.append(changed.mean())
                grown_shares.append(grown.mean())
            previous = grey
    return float(np.mean(shares)), float(np.mean(grown_shares)), len(shares) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, nargs="+")
    parser.add_argument("--tile", type=int, default=64, help="tile side, pixels")
    parser.add_argument("--threshold", type=float, default=4.0, help="mean grey difference of a changed tile")
    parser.add_argument("--frames", type=int, default=1800)
    args = parser.parse_args()
    print(f"tiles {args.tile} px, changed above {args.threshold} grey levels\n")
    print("| clip | key frames | tiles changed | with neighbours |\n| --- | --- | --- | --- |")
    for clip in args.clips:
        changed, grown, keys = changed_share(clip, args.tile, args.threshold, args.frames)
        print(f"| {clip.name} | {keys} | {changed:.2f} | {grown:.2f} |", flush=True)


if __name__ == "__main__":
    main()
