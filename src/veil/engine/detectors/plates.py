"""Licence plates found as text: PP-OCR text detection (shipped in rapidocr) plus a plate-likeness filter.

The text detector marks every line of text; plates are the lines that are short, roughly horizontal and of
a plate's proportions. Each kept line is grown to the outline of the plate around it, because the
characters fill only the middle of a plate and the state name, frame and stickers identify it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.detections import Detections
from veil.engine.detectors.base import DetectorConfig, DetectorInfo
from veil.engine.detectors.onnx import create_session, packaged_model
from veil.engine.errors import ModelError

__all__ = ["PlateDetector", "PlateFilter", "plate_boxes", "plate_like", "text_lines"]

MODEL_PACKAGE = "rapidocr"
MODEL_RESOURCE = "models/PP-OCRv6_det_small.onnx"
LABEL = "plate"
# Longer side the frame is resized to. 1280 px finds 0.982 of openalpr_us plates; video key frames use
# 960 px (0.946 on single photos) because tracking carries plates across key frames and cost is per frame.
PHOTO_MAX_SIDE = 1280
VIDEO_MAX_SIDE = 960

FloatMap = npt.NDArray[np.float32]
BoxArray = npt.NDArray[np.float32]
ScoreArray = npt.NDArray[np.float32]

# The network downsamples by 32, so its input sides must be multiples of 32.
_STRIDE = 32
# DB boxes thinner than this many map pixels are noise (rapidocr's min_size).
_MIN_SIDE_PX = 3.0


@dataclass(frozen=True)
class PlateFilter:
    """Which text lines count as plates, and how a line is grown to the plate outline.

    Attributes:
        min_aspect: shortest accepted text line, width / height of its rotated rectangle.
        max_aspect: longest accepted text line, width / height.
        max_angle_deg: largest accepted tilt of the line from horizontal, degrees.
        min_height_frac: lowest accepted line height, as a fraction of the frame's longer side.
        max_height_frac: highest accepted line height, as a fraction of the frame's longer side.
        grow_x: plate width / text line width, at least.
        grow_y: plate height / text line height, at least.
        plate_aspect: plate width / plate height (US and EU plates are 2:1 to 4.7:1; 2 covers both).

    Defaults come from openalpr_us at 1280 px (bench/plates_explore.py): the text lines on its plates have
    aspect 1.65 to 4.2, tilt under 17 degrees and height 0.013 to 0.17 of the long side; the ranges leave
    room for EU plates (longer lines) and farther cars. grow_x 1.3 covers 95% of the matched plates.
    """

    min_aspect: float = 1.5
    max_aspect: float = 6.0
    max_angle_deg: float = 25.0
    min_height_frac: float = 0.006
    max_height_frac: float = 0.2
    grow_x: float = 1.3
    grow_y: float = 1.0
    plate_aspect: float = 2.0


class PlateDetector:
    """Finds licence plates in BGR frames.

    Args:
        config: device, score threshold (None keeps `box_threshold`) and an optional replacement ONNX model.
        max_side: the frame is resized (down or up) so its longer side is this many pixels before detection;
            None: PHOTO_MAX_SIDE or VIDEO_MAX_SIDE, by `config.purpose`.
        pixel_threshold: probability above which a map pixel counts as text (DB binarisation).
        box_threshold: lowest mean text probability inside a line to keep it; `config.threshold` overrides.
        unclip_ratio: how far DB grows each shrunk text kernel back out, as in PP-OCR.
        plate_filter: which text lines are plates and how they grow to the plate outline.
        threads: ONNX Runtime intra-op threads; 0 lets it choose.

    Raises:
        ModelError: the model file is missing or cannot be loaded.
    """

    def __init__(
        self,
        config: DetectorConfig,
        *,
        max_side: int | None = None,
        pixel_threshold: float = 0.3,
        box_threshold: float = 0.4,
        unclip_ratio: float = 1.6,
        plate_filter: PlateFilter | None = None,
        threads: int = 0,
    ) -> None:
        model = config.model_path or packaged_model(MODEL_PACKAGE, MODEL_RESOURCE)
        if not model.is_file():
            raise ModelError(f"plate model {model} does not exist")
        self._session = create_session(model, config.device, threads)
        self._input_name: str = self._session.get_inputs()[0].name
        self.max_side = max_side or (VIDEO_MAX_SIDE if config.purpose == "video" else PHOTO_MAX_SIDE)
        self.pixel_threshold = pixel_threshold
        self.box_threshold = config.threshold if config.threshold is not None else box_threshold
        self.unclip_ratio = unclip_ratio
        self.plate_filter = plate_filter or PlateFilter()
        self.info = DetectorInfo(
            name=LABEL,
            labels=(LABEL,),
            model="PP-OCRv6 text detection + plate filter",
            package=f"rapidocr {_package_version(MODEL_PACKAGE)}",
            license="Apache-2.0",
            provider=str(self._session.get_providers()[0]),
        )

    def detect(self, frame_bgr: npt.NDArray[np.uint8]) -> Detections:
        """Plates in one (H, W, 3) uint8 BGR frame, as xyxy boxes in frame pixels labelled "plate"."""
        prob_map, scale = self.probability_map(frame_bgr)
        return self.plates_from_map(prob_map, scale, frame_bgr.shape[1], frame_bgr.shape[0])

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

    def plates_from_map(self, prob_map: FloatMap, scale: float, width: int, height: int) -> Detections:
        """Plate boxes from a text probability map made by `probability_map`.

        Args:
            prob_map: (h, w) float32 text probabilities.
            scale: frame pixels to map pixels.
            width: frame width in pixels; boxes are clipped to it.
            height: frame height in pixels.
        """
        rects, scores = text_lines(prob_map, self.pixel_threshold, self.unclip_ratio, self.box_threshold)
        return self.plates_from_lines(rects, scores, scale, width, height)

    def plates_from_lines(
        self, rects: BoxArray, scores: ScoreArray, scale: float, width: int, height: int
    ) -> Detections:
        """Plate boxes from the text lines `text_lines` found, in frame pixels clipped to width x height."""
        keep = (scores >= self.box_threshold) & plate_like(
            rects, self.plate_filter, scale * max(width, height)
        )
        boxes = plate_boxes(rects[keep], self.plate_filter) / scale
        return Detections.from_boxes(boxes, scores[keep], LABEL).clipped(width, height)


def text_lines(
    prob_map: FloatMap, pixel_threshold: float, unclip_ratio: float, min_score: float = 0.0
) -> tuple[BoxArray, ScoreArray]:
    """Text lines in a DB probability map, the way PP-OCR's DB post-processing finds them.

    Returns:
        (rects, scores): (N, 5) float32 rotated rectangles as centre x, centre y, width, height, angle in
        degrees (OpenCV's minAreaRect convention), in map pixels and already unclipped; (N,) mean
        probability inside each line before unclipping.
    """
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
    return np.array(rects, np.float32).reshape(-1, 5), np.array(scores, np.float32)


def _mean_inside(prob_map: FloatMap, rect: tuple[tuple[float, float], tuple[float, float], float]) -> float:
    """Mean probability inside a rotated rectangle (PP-OCR's "fast" box score)."""
    corners = cv2.boxPoints(rect)
    x0, y0 = np.floor(corners.min(0)).astype(int).clip(0, np.array(prob_map.shape[::-1]) - 1)
    x1, y1 = np.ceil(corners.max(0)).astype(int).clip(0, np.array(prob_map.shape[::-1]) - 1)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(corners - (x0, y0)).astype(np.int32)], 1)
    return float(cv2.mean(prob_map[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _upright(rects: BoxArray) -> tuple[BoxArray, BoxArray, BoxArray]:
    """Long side, short side and tilt from horizontal in degrees (0..90) of (N, 5) rotated rectangles."""
    w, h, angle = rects[:, 2], rects[:, 3], rects[:, 4]
    long_side, short_side = np.maximum(w, h), np.minimum(w, h)
    # minAreaRect reports the angle of the side it calls width; the tilt of the long side follows.
    tilt = np.where(w >= h, angle, angle - 90.0)
    tilt = np.abs((tilt + 90.0) % 180.0 - 90.0)
    return long_side, short_side, tilt


def plate_like(
    rects: BoxArray, rules: PlateFilter, map_long_side: float | ScoreArray
) -> npt.NDArray[np.bool_]:
    """Which (N, 5) text lines have a plate's proportions, size and tilt.

    Args:
        rects: rotated rectangles from `text_lines`, map pixels.
        rules: the accepted ranges.
        map_long_side: the frame's longer side in map pixels, one for all lines or (N,) one per line.
    """
    long_side, short_side, tilt = _upright(rects)
    aspect = long_side / np.maximum(short_side, 1e-6)
    height_frac = short_side / map_long_side
    return (
        (aspect >= rules.min_aspect)
        & (aspect <= rules.max_aspect)
        & (tilt <= rules.max_angle_deg)
        & (height_frac >= rules.min_height_frac)
        & (height_frac <= rules.max_height_frac)
    )


def plate_boxes(rects: BoxArray, rules: PlateFilter) -> BoxArray:
    """(N, 4) xyxy plate outlines in map pixels, grown around (N, 5) text lines."""
    long_side, short_side, _ = _upright(rects)
    # A plate is at least plate_aspect wide per unit of height, whichever of the line's sides sets it:
    # the length for a whole registration, the height for a fragment such as "020" read on its own.
    plate_h = np.maximum(short_side * rules.grow_y, long_side * rules.grow_x / rules.plate_aspect)
    plate_w = np.maximum(long_side * rules.grow_x, plate_h * rules.plate_aspect)
    # A tilted line's upright bounding box is wider and taller than the line; the plate covers both.
    theta = np.deg2rad(rects[:, 4])
    cos, sin = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    w, h = rects[:, 2], rects[:, 3]
    half_w = np.maximum(plate_w, w * cos + h * sin) / 2
    half_h = np.maximum(plate_h, w * sin + h * cos) / 2
    cx, cy = rects[:, 0], rects[:, 1]
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.float32)


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


def _package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
