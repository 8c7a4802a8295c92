"""Stage 2 of plate detection: from a text line to the upright box of the plate around it.

The characters fill the middle of a plate; the frame, the state name and the EU band identify the car too, so
each line grows by its own proportions. The rule that forced every plate to at least 2:1 (US plates) made
long European and stretched Indian plates far too tall and missed a quarter of them (BENCHMARKS.md, issue 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from veil.engine.detectors.plates.candidates import TextLines, line_geometry

__all__ = ["PlateOutline"]

BoxArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PlateOutline:
    """How a text line grows into a plate.

    Attributes:
        grow_length: plate length / line length.
        grow_height: plate height / line height.
        block_aspect: lines under this aspect are blocks (two-line plates), grown from their upright bounding
            box since their angle means nothing.

    Measured on all four dev plate sets together: (1.1, 1.3) gives 0.98 / 0.80 / 0.62 / 0.93 recall on US /
    Romanian / Egyptian / Indian plates before verification, the best of the rules tried.
    """

    grow_length: float = 1.1
    grow_height: float = 1.3
    block_aspect: float = 1.6

    def boxes(self, lines: TextLines) -> BoxArray:
        """(N, 4) float32 xyxy plate boxes in frame pixels, one per line, not yet clipped to the frame."""
        rects = lines.rects
        long_side, short_side, tilt = line_geometry(rects)
        plate_h = short_side * self.grow_height
        plate_w = np.maximum(long_side * self.grow_length, plate_h)
        theta = np.deg2rad(tilt)
        cos, sin = np.abs(np.cos(theta)), np.abs(np.sin(theta))
        box_w = plate_w * cos + plate_h * sin
        box_h = plate_w * sin + plate_h * cos
        block = long_side < self.block_aspect * short_side
        if block.any():
            corners = np.stack([cv2.boxPoints(((r[0], r[1]), (r[2], r[3]), r[4])) for r in rects[block]])
            box_w[block] = np.ptp(corners[:, :, 0], axis=1) * self.grow_length
            box_h[block] = np.ptp(corners[:, :, 1], axis=1) * self.grow_height
        cx, cy = rects[:, 0], rects[:, 1]
        return np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], 1).astype(
            np.float32
        )
