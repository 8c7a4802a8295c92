"""Licence plates, found as text in three stages, each its own module.

1. `candidates`: PP-OCR's text detector marks every line of text; loose shape rules keep plate-sized ones.
2. `outline`: each line grows into the upright box of the plate around it.
3. verification (`veil.engine.verifiers.plate_text`, through `veil.engine.detectors.verified`): each box is
   read; text that reads like a registration is kept, logos, slogans and shirt prints are dropped.
"""

from veil.engine.detectors.plates.detector import MAX_SIDE, PlateCandidates, plate_detector

__all__ = ["MAX_SIDE", "PlateCandidates", "plate_detector"]
