"""Stage 1 of plate detection: every text line that could be a plate, from PP-OCR's text detector.

The network (PP-OCRv6 small detection, shipped in rapidocr) marks text pixels; DB post-processing turns them
into rotated line rectangles, as PP-OCR does. The shape rules here are deliberately loose: the verification
stage, not the shape, separates plates from other text, and a long European line or a two-line motorcycle
plate (a squarish block) must get through.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.onnx import create_session, packaged_model
from veil.engine.detectors.quantized import model_for, precision_of
from veil.engine.errors import ModelError

__all__ = ["MODEL_PACKAGE", "LineShape", "TextLineFinder", "TextLines", "line_geometry", "text_lines"]

MODEL_PACKAGE = "rapidocr"
MODEL_RESOURCE = "models/PP-OCRv6_det_small.onnx"

FloatMap = npt.NDArray[np.float32]
RectArray = npt.NDArray[np.float32]
ScoreArray = npt.NDArray[np.float32]

# The network downsamples by 32, so its input sides must be multiples of 32.
_STRIDE = 32
# DB boxes thinner than this many map pixels are noise (rapidocr's min_size).
_MIN_SIDE_PX = 3.0


@dataclass(frozen=True)
class TextLines:
    """Text lines in one frame.

    Attributes:
        rects: (N, 5) float32 rotated rectangles in frame pixels: centre x, centre y, width, height, angle in
            degrees (OpenCV's minAreaRect convention), already grown by DB's unclip step.
        scores: (N,) float32 mean text probability inside each line.
    """

    rects: RectArray
    scores: ScoreArray

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: npt.NDArray[np.bool_]) -> TextLines:
        return TextLines(self.rects[index], self.scores[index])


@dataclass(frozen=True)
class LineShape:
    """Which text lines are plate candidates.

    Attributes:
        min_aspect: shortest accepted line, long side / short side.
        max_aspect: longest accepted line (Indian and EU plates read as one line reach 10:1).
        max_tilt_deg: largest tilt of a line's long side from horizontal.
        block_aspect: lines under this aspect are blocks (two-line plates); their tilt is not checked, since
            minAreaRect's angle of a near-square means nothing.
        min_height_frac: lowest line height, as a fraction of the frame's longer side.
        max_height_frac: highest line height, as a fraction of the frame's longer side.

    Measured on all four dev plate sets together (BENCHMARKS.md, issue 9): these ranges keep 0.98 / 0.80 /
    0.62 / 0.93 of the US / Romanian / Egyptian / Indian plates as lines, against 0.98 / 0.70 / 0.39 / 0.41
    for the US-tuned ranges they replace.
    """

    min_aspect: float = 0.8
    max_aspect: float = 12.0
    max_tilt_deg: float = 25.0
    block_aspect: float = 1.6
    min_height_frac: float = 0.004
    max_height_frac: float = 0.2

    def accepts(self, lines: TextLines, frame_long_side: float) -> npt.NDArray[np.bool_]:
        """(N,) True for the lines of plate-like proportions, tilt and size in a frame of that longer side."""
        long_side, short_side, tilt = line_geometry(lines.rects)
        aspect = long_side / np.maximum(short_side, 1e-6)
        height_frac = short_side / frame_long_side
        return (
            (aspect >= self.min_aspect)
            & (aspect <= self.max_aspect)
            & ((tilt <= self.max_tilt_deg) | (aspect < self.block_aspect))
            & (height_frac >= self.min_height_frac)
            & (height_frac <= self.max_height_frac)
        )


class TextLineFinder:
    """Finds text lines in BGR frames with PP-OCR's text detector.

    Args:
        config: device and an optional replacement ONNX model.
        max_side: the frame is resized (down or up) so its longer side is this many pixels.
        pixel_threshold: probability above which a map pixel counts as text (DB binarisation).
        box_threshold: lowest mean text probability inside a line to keep it.
        unclip_ratio: how far DB grows each shrunk text kernel back out, as in PP-OCR.
        shape: which lines are plate candidates.
        threads: ONNX Runtime intra-op threads; 0 lets it choose.

    Raises:
        ModelError: the model file is missing or cannot be loaded.
    """

    def __init__(
        self,
        config: DetectorConfig,
        *,
        max_side: int,
        pixel_threshold: float = 0.3,
        box_threshold: float = 0.4,
        unclip_ratio: float = 1.6,
        shape: LineShape | None = None,
        threads: int = 0,
    ) -> None:
        model = model_for("plate text", config, packaged_model(MODEL_PACKAGE, MODEL_RESOURCE))
        if not model.is_file():
            raise ModelError(f"plate model {model} does not exist")
        self._session = create_session(model, config.device, threads)
        self._input_name: str = self._session.get_inputs()[0].name
        self.provider = str(self._session.get_providers()[0])
        self.precision = precision_of(self._session)
        self.max_side = max_side
        self.pixel_threshold = pixel_threshold
        self.box_threshold = box_threshold
        self.unclip_ratio = unclip_ratio
        self.shape = shape or LineShape()

    def find(self, frame_bgr: npt.NDArray[np.uint8]) -> TextLines:
        """Plate-candidate lines in one (H, W, 3) uint8 BGR frame, in frame pixels."""
        prob_map, scale = self.probability_map(frame_bgr)
        return self.lines_from_map(prob_map, scale, max(frame_bgr.shape[:2]))

    def probability_map(self, frame_bgr: npt.NDArray[np.uint8]) -> tuple[FloatMap, float]:
        """Runs the text network.

        Returns:
            (map, scale): the (h, w) float32 text probability map of the resized, padded frame, and the
            factor from frame pixels to map pixels.
        """
        tensor, scale = _to_tensor(frame_bgr, self.max_side)
        try:
            outputs = self._session.run(None, {self._input_name: tensor})
        except Exception as exc:  # ONNX Runtime raises its own exception types; callers see one error.
            raise ModelError(f"plate model failed on a {frame_bgr.shape} frame: {exc}") from exc
        return np.asarray(outputs[0], np.float32)[0, 0], scale

    def lines_from_map(self, prob_map: FloatMap, scale: float, frame_long_side: int) -> TextLines:
        """Candidate lines in a map made by `probability_map`, converted to frame pixels."""
        found = text_lines(prob_map, self.pixel_threshold, self.unclip_ratio, self.box_threshold)
        rects = found.rects.copy()
        rects[:, :4] /= scale
        in_frame = TextLines(rects, found.scores)
        return in_frame[self.shape.accepts(in_frame, frame_long_side)]


def text_lines(
    prob_map: FloatMap, pixel_threshold: float, unclip_ratio: float, min_score: float = 0.0
) -> TextLines:
    """Text lines in a DB probability map, the way PP-OCR's DB post-processing finds them, in map pixels."""
    # rapidocr dilates the binary map by 2x2 so that characters a pixel apart join into one line.
    mask = cv2.dilate((prob_map > pixel_threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    rects: list[tuple[float, float, float, float, float]] = []
    scores: list[float] = []
    for contour in contours:
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < _MIN_SIDE_PX:
            continue
        score = _mean_inside(prob_map, ((cx, cy), (w, h), angle))
        if score < min_score:
            continue
        # DB's unclip offsets the polygon by area * ratio / perimeter; for a rectangle that adds the
        # distance on every side, which is all pyclipper would do here.
        distance = w * h * unclip_ratio / (2 * (w + h))
        rects.append((cx, cy, w + 2 * distance, h + 2 * distance, angle))
        scores.append(score)
    return TextLines(np.array(rects, np.float32).reshape(-1, 5), np.array(scores, np.float32))


def line_geometry(rects: RectArray) -> tuple[RectArray, RectArray, RectArray]:
    """Long side, short side and tilt of the long side from horizontal in degrees (0..90) of (N, 5) rects."""
    w, h, angle = rects[:, 2], rects[:, 3], rects[:, 4]
    long_side, short_side = np.maximum(w, h), np.minimum(w, h)
    # minAreaRect reports the angle of the side it calls width; the tilt of the long side follows.
    tilt = np.where(w >= h, angle, angle - 90.0)
    tilt = np.abs((tilt + 90.0) % 180.0 - 90.0)
    return long_side, short_side, tilt


def _mean_inside(prob_map: FloatMap, rect: tuple[tuple[float, float], tuple[float, float], float]) -> float:
    """Mean probability inside a rotated rectangle (PP-OCR's "fast" box score)."""
    corners = cv2.boxPoints(rect)
    x0, y0 = np.floor(corners.min(0)).astype(int).clip(0, np.array(prob_map.shape[::-1]) - 1)
    x1, y1 = np.ceil(corners.max(0)).astype(int).clip(0, np.array(prob_map.shape[::-1]) - 1)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - (x0, y0)).astype(np.int32)], 1)
    return float(cv2.mean(prob_map[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _to_tensor(frame_bgr: npt.NDArray[np.uint8], max_side: int) -> tuple[npt.NDArray[np.float32], float]:
    """Resizes a BGR frame so its longer side is `max_side`, pads to multiples of 32 and normalises.

    Returns:
        (tensor, scale): (1, 3, H, W) float32 in [-1, 1] (PP-OCR's mean 0.5, std 0.5 on BGR), and the
        factor from frame pixels to tensor pixels.
    """
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or min(frame_bgr.shape[:2]) < 1:
        raise ModelError(f"plate detector needs an (H, W, 3) frame, got shape {frame_bgr.shape}")
    height, width = frame_bgr.shape[:2]
    scale = max_side / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(
        frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    # Padding instead of stretching to a multiple of 32 keeps one scale for both axes.
    padded = np.zeros((_round_up(new_h), _round_up(new_w), 3), np.float32)
    padded[:new_h, :new_w] = resized.astype(np.float32) / 127.5 - 1.0
    return padded.transpose(2, 0, 1)[None], scale


def _round_up(side: int) -> int:
    return -(-side // _STRIDE) * _STRIDE
