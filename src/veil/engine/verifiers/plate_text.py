"""A plate is text that reads like a registration: PP-OCR's text recognizer as a verifier.

A plate carries 4-10 letters and digits, digits almost always among them; a logo, a slogan or a shirt print
mostly does not. Each candidate box is cut out and read with PP-OCRv6's small recognizer (shipped in
rapidocr, Apache-2.0); a box whose reading is plate-like is kept. Two-line plates read badly as one line,
and a crop holding a line and some of the car around it may read better in part, so a box that fails is read
again as its top and bottom halves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import Device
from veil.engine.detectors.onnx import create_session, package_version, packaged_model
from veil.engine.errors import ModelError
from veil.engine.verifiers.base import VerifierInfo

__all__ = [
    "PlateTextRule",
    "PlateTextVerifier",
    "Reading",
    "TextReader",
    "crop_box",
    "halves",
    "unread_blocks",
]

MODEL_PACKAGE = "rapidocr"
MODEL_RESOURCE = "models/PP-OCRv6_rec_small.onnx"
# The recognizer reads lines scaled to 48 px high; wider batches cost more than they save.
LINE_HEIGHT = 48
MAX_LINE_WIDTH = 1280
BATCH = 8

Frame = npt.NDArray[np.uint8]

_LETTER_GROUPS = re.compile(r"[A-Z]{2,4}(?:[ -][A-Z]{2,4})+")
# A box narrower than this (width / height) may be a two-line plate.
BLOCK_ASPECT = 2.0
# Two-line plates the recognizer cannot read are kept up to this share of the frame; larger unreadable
# blocks on people photos are clothing and faces, while 95% of the Egyptian dev plates are under 7%.
MAX_UNREAD_BLOCK = 0.05
# Reading at least this sure as Latin letters and digits means the recognizer could read it: not a plate.
SURE_LATIN = 0.8


@dataclass(frozen=True)
class Reading:
    """What the recognizer read in one crop: the text and each character's confidence in [0, 1]."""

    text: str
    confidence: tuple[float, ...]


@dataclass(frozen=True)
class PlateTextRule:
    """Which readings are registrations.

    Attributes:
        min_chars: fewest ASCII letters and digits.
        max_chars: most ASCII letters and digits.
        min_digits: fewest digits among them.
        min_confidence: lowest mean confidence of those characters.
        max_other: most letters or digits of other scripts (a Chinese province sign, a misread glyph).
        max_lowercase: most lower-case letters (plates are upper case; dates, times and words are not).
        letter_groups_confidence: a reading with too few digits still passes as upper-case letter groups of
            2-4 joined by spaces or dashes ("UHI-FOF": older and vanity US plates) read at least this sure;
            None: never.

    Lenient on purpose (measured on all four dev plate sets, BENCHMARKS.md, issue 9): blurred and small plates
    read with low confidence, and a stricter rule drops more plates than the few extra false boxes it removes.
    """

    min_chars: int = 3
    max_chars: int = 10
    min_digits: int = 1
    min_confidence: float = 0.3
    max_other: int = 1
    max_lowercase: int = 1
    letter_groups_confidence: float | None = 0.6

    def accepts(self, reading: Reading) -> bool:
        return self._registration(reading) or self._letter_groups(reading)

    def _letter_groups(self, reading: Reading) -> bool:
        sure = self.letter_groups_confidence
        return (
            sure is not None
            and bool(_LETTER_GROUPS.fullmatch(reading.text.strip()))
            and float(np.mean(reading.confidence)) >= sure
        )

    def _registration(self, reading: Reading) -> bool:
        chars = [
            (c, p)
            for c, p in zip(reading.text, reading.confidence, strict=False)
            if c.isascii() and c.isalnum()
        ]
        other = sum(1 for c in reading.text if c.isalnum() and not c.isascii())
        lowercase = sum(1 for c, _ in chars if c.islower())
        if not self.min_chars <= len(chars) <= self.max_chars or other > self.max_other:
            return False
        if lowercase > self.max_lowercase:
            return False
        digits = sum(c.isdigit() for c, _ in chars)
        return digits >= self.min_digits and float(np.mean([p for _, p in chars])) >= self.min_confidence


class TextReader:
    """PP-OCRv6 small text recognition with greedy CTC decoding.

    Raises:
        ModelError: the model is missing or cannot be loaded.
    """

    def __init__(self, device: Device = "auto", threads: int = 0) -> None:
        self._session = create_session(packaged_model(MODEL_PACKAGE, MODEL_RESOURCE), device, threads)
        self._input_name: str = self._session.get_inputs()[0].name
        metadata = self._session.get_modelmeta().custom_metadata_map
        if "character" not in metadata:
            raise ModelError(f"{MODEL_RESOURCE} carries no character list; reinstall rapidocr")
        # CTC's class 0 is the blank; the model's last class is a space.
        self._alphabet = ["", *metadata["character"].split("\n"), " "]

    def read(self, crops: list[Frame]) -> list[Reading]:
        """What each BGR crop says, in order; crops of similar width are read in batches."""
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1))
        readings: dict[int, Reading] = {}
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            for index, reading in zip(chunk, self._read_batch([crops[i] for i in chunk]), strict=True):
                readings[index] = reading
        return [readings[i] for i in range(len(crops))]

    def _read_batch(self, crops: list[Frame]) -> list[Reading]:
        widths = [
            min(MAX_LINE_WIDTH, max(8, round(LINE_HEIGHT * c.shape[1] / max(c.shape[0], 1)))) for c in crops
        ]
        batch = np.zeros((len(crops), 3, LINE_HEIGHT, max(widths)), np.float32)
        for row, (crop, width) in zip(batch, zip(crops, widths, strict=True), strict=True):
            resized = cv2.resize(crop, (width, LINE_HEIGHT), interpolation=cv2.INTER_LINEAR)
            row[:, :, :width] = (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
        try:
            probs = self._session.run(None, {self._input_name: batch})[0]
        except Exception as exc:  # ONNX Runtime raises its own exception types; callers see one error.
            raise ModelError(f"text recognizer failed on {len(crops)} crops: {exc}") from exc
        return [self._decode(row) for row in probs]

    def _decode(self, probs: npt.NDArray[np.float32]) -> Reading:
        best, confidence = probs.argmax(1), probs.max(1)
        # Greedy CTC: collapse repeats, then drop blanks.
        keep = (best != 0) & np.concatenate([[True], best[1:] != best[:-1]])
        text = "".join(self._alphabet[k] if k < len(self._alphabet) else "" for k in best[keep])
        return Reading(text, tuple(float(p) for p in confidence[keep]))


class PlateTextVerifier:
    """Keeps the candidate boxes whose text reads like a registration.

    Args:
        device: where the recognizer runs.
        rule: which readings count as plates.
        read_fraction: the part of each box that is read, as (width, height) fractions around its centre:
            a plate detector's box holds a margin around the text, which reads worse than the line alone.
        read_halves: read a box that fails whole again as its top and bottom halves: a two-line plate passes
            when the halves joined, or either alone, read as a plate.
        keep_unread_blocks: keep a block-shaped box (a two-line plate's shape) of at most
            MAX_UNREAD_BLOCK of the frame that fails, unless it was read surely as Latin text: plates in
            scripts the recognizer lacks (Egypt's Arabic) read as unsure noise.
        threads: ONNX Runtime intra-op threads; 0 lets it choose.
    """

    def __init__(
        self,
        device: Device = "auto",
        *,
        rule: PlateTextRule | None = None,
        read_fraction: tuple[float, float] = (1.0, 1.0),
        read_halves: bool = True,
        keep_unread_blocks: bool = True,
        threads: int = 0,
    ) -> None:
        self._reader = TextReader(device, threads)
        self.rule = rule or PlateTextRule()
        self.read_fraction = np.array(read_fraction * 2, np.float32)
        self.read_halves = read_halves
        self.keep_unread_blocks = keep_unread_blocks
        self.info = VerifierInfo(
            name="plate text",
            model="PP-OCRv6 text recognition",
            package=f"{MODEL_PACKAGE} {package_version(MODEL_PACKAGE)}",
            license="Apache-2.0",
            precision="FP32",
        )

    def keep(self, frame_bgr: Frame, candidates: Detections) -> npt.NDArray[np.bool_]:
        """(N,) True for each candidate box whose reading, whole or as halves, is plate-like."""
        centre = np.tile((candidates.xyxy[:, :2] + candidates.xyxy[:, 2:]) / 2, 2)
        read_xyxy = centre + (candidates.xyxy - centre) * self.read_fraction
        crops = [crop_box(frame_bgr, box) for box in read_xyxy]
        whole = self._reader.read(crops)
        kept = np.array([self.rule.accepts(r) for r in whole], bool).reshape(len(crops))
        failed = np.flatnonzero(~kept) if self.read_halves else np.empty(0, np.int64)
        readings = self._reader.read([half for i in failed for half in halves(crops[i])])
        for i, top, bottom in zip(failed, readings[0::2], readings[1::2], strict=True):
            joined = Reading(top.text + bottom.text, top.confidence + bottom.confidence)
            kept[i] = any(self.rule.accepts(r) for r in (joined, top, bottom))
        if self.keep_unread_blocks:
            kept |= unread_blocks(candidates.xyxy, whole, frame_bgr.shape[0] * frame_bgr.shape[1])
        return kept


def unread_blocks(
    xyxy: npt.NDArray[np.float32], whole: list[Reading], frame_area: int
) -> npt.NDArray[np.bool_]:
    """(N,) True for the boxes shaped like a two-line plate, at most MAX_UNREAD_BLOCK of the frame, whose
    whole reading is not surely Latin text.

    Args:
        xyxy: (N, 4) candidate boxes, frame pixels.
        whole: each box's reading.
        frame_area: the frame's width times height, pixels.
    """
    width, height = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    block = (width < BLOCK_ASPECT * height) & (width * height <= MAX_UNREAD_BLOCK * frame_area)
    latin = np.array([_surely_latin(r) for r in whole], bool).reshape(len(whole))
    unread: npt.NDArray[np.bool_] = block & ~latin
    return unread


def _surely_latin(reading: Reading) -> bool:
    """At least 3 ASCII letters and digits, read with a mean confidence of SURE_LATIN or more."""
    latin = [p for c, p in zip(reading.text, reading.confidence, strict=False) if c.isascii() and c.isalnum()]
    return len(latin) >= 3 and float(np.mean(latin)) >= SURE_LATIN


def crop_box(frame_bgr: Frame, xyxy: npt.NDArray[np.float32]) -> Frame:
    """The box's pixels, at least 2x2, clipped to the frame."""
    height, width = frame_bgr.shape[:2]
    x0, y0 = (int(v) for v in np.floor(xyxy[:2]).clip(0))
    x1, y1 = int(np.ceil(xyxy[2])), int(np.ceil(xyxy[3]))
    x0, y0 = max(0, min(x0, width - 2)), max(0, min(y0, height - 2))
    return frame_bgr[y0 : max(min(y1, height), y0 + 2), x0 : max(min(x1, width), x0 + 2)]


def halves(crop: Frame) -> tuple[Frame, Frame]:
    """The top and bottom halves of a crop (the two lines of a two-line plate)."""
    middle = max(1, crop.shape[0] // 2)
    return crop[:middle], crop[middle:]
