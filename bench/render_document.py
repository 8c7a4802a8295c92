"""Reading a large render document: time and peak memory of checking it whole as pydantic models, against
`veil.core.services.documents.read_document` (its parsed JSON and one frame of models at a time).

Generates an hour of 30 fps video with `--boxes-per-frame` faces in every frame as `veil.detections/1` JSON,
then measures each way in a process of its own (the peak, VmHWM, is reset before and read after).

    .venv/bin/python bench/render_document.py --frames 108000 --boxes-per-frame 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_MEASURE = """
import sys, time
from pathlib import Path
from veil.core.services.documents import read_document
from veil.core.parameters import DetectionsDocument

def kib(field):
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])

data = Path(sys.argv[1]).read_bytes()
Path("/proc/self/clear_refs").write_text("5")
before, began = kib("VmRSS"), time.perf_counter()
if sys.argv[2] == "models":
    DetectionsDocument.model_validate_json(data)
else:
    read_document(data)
print(f"{time.perf_counter() - began:.1f} s, +{(kib('VmHWM') - before) / 1024:.0f} MiB")
"""


def document(frames: int, boxes_per_frame: int) -> bytes:
    box = {"label": "face", "score": 0.9, "box": [10.5, 20.5, 110.5, 220.5], "track_id": 3}
    media = {"type": "video", "width": 1920, "height": 1080, "fps": 30, "frame_count": frames}
    listed = [
        {"index": index, "time": index / 30, "detections": [{**box, "source": "detected"}] * boxes_per_frame}
        for index in range(frames)
    ]
    return json.dumps({"schema": "veil.detections/1", "media": media, "frames": listed}).encode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=108_000)
    parser.add_argument("--boxes-per-frame", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="veil-render-document-") as folder:
        path = Path(folder) / "document.json"
        path.write_bytes(document(args.frames, args.boxes_per_frame))
        print(f"{args.frames * args.boxes_per_frame:,} boxes, {path.stat().st_size / 1e6:.1f} MB of JSON")
        for way in ("models", "read_document"):
            result = subprocess.run(
                [sys.executable, "-c", _MEASURE, str(path), way], capture_output=True, text=True, check=True
            )
            print(f"{way:>14}: {result.stdout.strip()}")


if __name__ == "__main__":
    main()
