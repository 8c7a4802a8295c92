"""Datumaro (CVAT's dataset library) on the same work as bench/annotations_speed.py, to decide whether Veil
writes the formats itself (issue 11). Run with an interpreter that has Datumaro, not Veil's environment:
Datumaro 1.13 pins Pillow 12 and OpenCV 4 or 5 in ways Veil's pins do not meet.

    python3.11 -m venv /tmp/dmvenv && /tmp/dmvenv/bin/pip install datumaro
    /tmp/dmvenv/bin/python bench/annotations_datumaro.py

Each format in a fresh process: builds the dataset of 18,000 frames (the tracks of annotations_speed's
generated report: `--tracks` boxes a frame, the same gaps), exports it without images, imports it back and
counts the boxes; seconds of each step and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time

FPS, TRACK_FRAMES, GAP = 30, 300, range(150, 180)  # as bench/annotations_speed.py
READER = {"mot_seq_gt": "mot_seq", "yolo_ultralytics": "yolo"}  # Datumaro names some readers apart


def run(fmt: str, frames: int, tracks: int) -> dict[str, float]:
    import datumaro as dm
    from datumaro.components.media import Image

    logging.disable(logging.WARNING)
    start = time.perf_counter()
    items = []
    for index in range(frames):
        boxes = []
        for k in range(tracks):
            age = (index + 37 * k) % TRACK_FRAMES
            if age in GAP:
                continue
            track = k + tracks * ((index + 37 * k) // TRACK_FRAMES)
            x, y = 50 + 5.3 * age, 100 + 200 * (k % 4)
            attributes = {"track_id": track, "score": 0.9, "source": "tracked", "occluded": False}
            boxes.append(dm.Bbox(x, y, 60.4, 80.2, label=k % 2, id=k, attributes=attributes))
        media = Image.from_file(path=f"frame_{index:06d}.jpg", size=(1080, 1920))
        items.append(
            dm.DatasetItem(
                id=f"frame_{index:06d}", media=media, annotations=boxes, attributes={"frame": index}
            )
        )
    dataset = dm.Dataset.from_iterable(items, categories=["face", "plate"], media_type=Image)
    built = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        dataset.export(folder, fmt, save_media=False)
        exported = time.perf_counter()
        back = dm.Dataset.import_from(folder, READER.get(fmt, fmt))
        count = sum(len(item.annotations) for item in back)
        imported = time.perf_counter()
    return {
        "build_s": round(built - start, 2),
        "export_s": round(exported - built, 2),
        "import_s": round(imported - exported, 2),
        "boxes": count,
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=10 * 60 * FPS)
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--formats", nargs="+", default=["coco_instances", "mot_seq_gt", "datumaro", "voc"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run(args.one, args.frames, args.tracks)))
        return
    for fmt in args.formats:
        argv = [
            sys.executable,
            __file__,
            "--one",
            fmt,
            "--frames",
            str(args.frames),
            "--tracks",
            str(args.tracks),
        ]
        done = subprocess.run(argv, capture_output=True, text=True)
        lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()
        print(f"{fmt}: {lines[-1] if lines else 'no output'}")


if __name__ == "__main__":
    main()
