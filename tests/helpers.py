"""Generated media and checks shared by the tests."""

from __future__ import annotations

import json
import os
import re
import stat
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from PIL import Image

FACE_BOX = (40.0, 30.0, 100.0, 90.0)
"""Where the scripted face detector reports a face, xyxy pixels."""


def noise_image(width: int = 200, height: int = 150, seed: int = 0) -> np.ndarray:
    """A random RGB image: any blur or fill shows as a large change in local variance."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_image(path: Path, array: np.ndarray | None = None, **save_args: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise_image() if array is None else array).save(path, **save_args)
    return path


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def validate_report(path: Path) -> dict[str, Any]:
    """Loads a detections JSON file and checks it against the published veil.detections/1 schema."""
    document = json.loads(path.read_text())
    schema = json.loads(files("veil").joinpath("schemas/detections-1.json").read_text())
    jsonschema.validate(document, schema)
    return document


@dataclass
class RecordingQueue:
    """Stands in for the broker: keeps the task ids the API enqueued."""

    task_ids: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    segments: list[tuple[str, int, str]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def enqueue(self, task_id: str, queue: str) -> None:
        self.task_ids.append(task_id)
        self.queues.append(queue)

    def enqueue_segments(self, task_id: str, indices: Sequence[int], queue: str) -> None:
        self.segments.extend((task_id, index, queue) for index in indices)

    def enqueue_request(self, request_id: str, queue: str) -> None:
        self.requests.append((request_id, queue))

    def enqueue_callback(self, task_id: str) -> None:
        self.callbacks.append(task_id)


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_signature_verifier() -> Callable[[str, bytes, str], bool]:
    """`verify_veil_signature` as the README shows it to callback receivers, run as written there."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (block,) = [block for block in blocks if "def verify_veil_signature" in block]
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(block), namespace)
    verify: Callable[[str, bytes, str], bool] = namespace["verify_veil_signature"]
    return verify


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """The process umask set to `mask` for the block."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes_below(root: Path) -> dict[str, int]:
    """{path relative to `root` ("." for root itself): permission bits} of every folder and file below it."""
    paths = [root, *root.rglob("*")]
    return {str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode) for path in paths}
