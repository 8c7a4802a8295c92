"""A video's header, and whether the file is whole, read in a child process bounded in memory and time.

FFmpeg builds its indexes from what a container declares before reading a packet, so a small upload can make
it allocate gigabytes (an MP4 declaring 85 million samples: +1 GB and 2.7 s). The reading itself
(`veil.core.probing.video_container`) therefore runs as a script in a child process capped at
`MAX_PROBE_BYTES` of address space and `PROBE_TIMEOUT_S`; whatever a file declares, the API process pays a
process start (about 0.2 s) and nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from veil.core.errors import UnprocessableMediaError
from veil.core.probing import video_container
from veil.core.probing.video_container import VideoHeader, too_much_memory

__all__ = ["MAX_PROBE_BYTES", "PROBE_TIMEOUT_S", "VideoHeader", "probe_video"]

# The child's whole address space: Python and FFmpeg take about 130 MiB; a 10-hour, 60 fps MP4's index
# takes about 60 MiB more.
MAX_PROBE_BYTES = 512 * 2**20
# Reading every packet of a 2 GiB file takes a few seconds.
PROBE_TIMEOUT_S = 60.0
_SCRIPT = Path(video_container.__file__)


def probe_video(path: Path, max_pixels: int, *, check_complete: bool) -> VideoHeader:
    """The size, rate and length of the file's video stream; with `check_complete`, also that the file
    holds what its container declares.

    Raises:
        UnprocessableMediaError: the container cannot be read, holds no video stream, has frames of more
            than `max_pixels` pixels, is cut short, or needs more memory or time than the caps to read.
    """
    # -I: the child imports nothing from the working directory or the environment, and not the Veil
    # package (whose engine would take the memory the cap is for).
    command = [sys.executable, "-I", str(_SCRIPT), str(path), str(max_pixels), str(MAX_PROBE_BYTES)]
    try:
        child = subprocess.run(
            [*command, *(["--complete"] if check_complete else [])],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise UnprocessableMediaError(
            f"The video could not be read within {PROBE_TIMEOUT_S:.0f} s; it may be damaged."
        ) from None
    answer = _answer(child.stdout)
    if isinstance(answer.get("header"), dict):
        return VideoHeader(**answer["header"])
    raise UnprocessableMediaError(str(answer.get("refused") or too_much_memory(MAX_PROBE_BYTES)))


def _answer(stdout: str) -> dict[str, Any]:
    """The child's JSON line; nothing when it wrote none (it crashed, out of memory outside Python)."""
    try:
        answer = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}
    return answer if isinstance(answer, dict) else {}
