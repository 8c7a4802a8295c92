"""API memory under decompression bombs: peak RSS of the API process during concurrent uploads of a small file
that declares a huge picture or a huge video.

Starts `veil serve --workers 0` on a fresh data dir under /tmp (the API alone, in the `veil serve` process),
generates a PNG of one colour that declares `--side` x `--side` pixels (a few hundred KB), or with
`--mp4-samples N` a 10-frame MP4 whose tables declare N samples (a few KB), and has `--clients` clients
upload it at the same time. Reports the API's resident memory before and its peak (VmHWM) after, the time
the uploads took and the answers they got.

    .venv/bin/python bench/upload_memory.py --clients 4 --side 12000
    .venv/bin/python bench/upload_memory.py --clients 4 --mp4-samples 85000000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import struct
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np

from api_server import running_api


def png_bomb(side: int) -> bytes:
    """A valid RGB PNG of `side` x `side` black pixels: zlib shrinks each row of zeros to a few bytes."""
    row = b"\0" + bytes(side * 3)  # filter type 0, then the pixels
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def mp4_bomb(samples: int) -> bytes:
    """A 10-frame 64x64 H.264 MP4 whose sample tables declare `samples` samples of 100 bytes each."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    data = bytearray(buffer.getvalue())
    sizes = data.find(b"stsz")  # version and flags, the size of every sample, how many samples
    data[sizes + 8 : sizes + 16] = struct.pack(">II", 100, samples)
    times = data.find(b"stts")  # version and flags, entry count, then the first entry's sample count
    data[times + 12 : times + 16] = struct.pack(">I", samples)
    return bytes(data)


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


async def upload_all(url: str, headers: dict[str, str], data: bytes, clients: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/files", files={"file": (f"bomb{i}", data)}) for i in range(clients))
        )
    return [response.status_code for response in responses]


def run(clients: int, data: bytes, declared: str, data_dir: Path) -> dict[str, Any]:
    with running_api(data_dir) as api:
        before = memory_kib(api.process.pid)
        began = time.perf_counter()
        statuses = asyncio.run(upload_all(api.url, api.headers, data, clients))
        elapsed_s = time.perf_counter() - began
        after = memory_kib(api.process.pid)
    return {
        "upload_bytes": len(data),
        "declares": declared,
        "clients": clients,
        "rss_before_mib": before["VmRSS"] / 1024,
        "peak_rss_mib": after["VmHWM"] / 1024,
        "peak_growth_mib": (after["VmHWM"] - before["VmRSS"]) / 1024,
        "uploads_s": elapsed_s,
        "statuses": dict(Counter(statuses)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--side", type=int, default=12000)
    parser.add_argument("--mp4-samples", type=int, default=0, help="an MP4 declaring N samples")
    args = parser.parse_args()
    if args.mp4_samples:
        data, declared = mp4_bomb(args.mp4_samples), f"{args.mp4_samples:,} video samples"
    else:
        data, declared = png_bomb(args.side), f"{args.side}x{args.side} pixels"
    with tempfile.TemporaryDirectory(prefix="veil-upload-memory-") as folder:
        result = run(args.clients, data, declared, Path(folder))
    for name, value in result.items():
        print(f"{name:>18}: {value:.1f}" if isinstance(value, float) else f"{name:>18}: {value}")


if __name__ == "__main__":
    main()
