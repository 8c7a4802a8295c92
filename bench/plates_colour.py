"""Colour and edge cues as a plate check: do they separate the plates reading keeps from its false boxes?

Issue 9 lever. On the even photos cached by `plates_pipeline.py read --crop line`, the default rule's kept
boxes are split into true ones (IoU >= 0.3 with a labelled plate of the four plate sets) and false ones (every
box on wider_dev). Each box's crop gets four cues: the share of bright unsaturated pixels (a white or light
plate background), grey contrast (95th - 5th percentile), Canny edge density and mean saturation. Printed per
cue: the AUC (chance that a plate scores above a false box) and the share of false boxes a cut keeping 99% of
plates would drop, in either direction.

    .venv/bin/python bench/plates_colour.py
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from plates_pipeline import DATA, DEFAULT, PlateOutline, Sample, kept  # bench/ is on sys.path
from veil.engine.boxes import box_iou
from veil.engine.media.image import read_image
from veil.engine.verifiers.plate_text import crop_box

CUES = ("bright unsaturated share", "contrast", "edge density", "mean saturation")


def cues(crop: npt.NDArray[np.uint8]) -> tuple[float, float, float, float]:
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    bright = float(((hsv[..., 1] < 60) & (hsv[..., 2] > 140)).mean())
    contrast = float(np.percentile(grey, 95) - np.percentile(grey, 5))
    edges = float((cv2.Canny(crop, 80, 160) > 0).mean())
    return bright, contrast, edges, float(hsv[..., 1].mean())


def main() -> None:
    photos = pickle.loads(Path("/tmp/veil_plate_verify/candidates-line.pkl").read_bytes())
    true: list[tuple[float, ...]] = []
    false: list[tuple[float, ...]] = []
    for photo in photos:
        sample: Sample = photo["sample"]
        keep = kept(photo, DEFAULT)
        if not keep.any():
            continue
        frame = read_image(DATA / sample.image).frame_bgr
        boxes = PlateOutline().boxes(photo["lines"])[keep]
        truth = np.array(sample.plates_xyxy, np.float32).reshape(-1, 4)
        best = box_iou(boxes, truth).max(1) if len(truth) else np.zeros(len(boxes))
        for box, iou in zip(boxes, best, strict=True):
            crop = crop_box(frame, box)
            if sample.dataset == "wider_dev":
                false.append(cues(crop))
            elif iou >= 0.3:
                true.append(cues(crop))
    plates, others = np.array(true), np.array(false)
    print(f"{len(plates)} plates, {len(others)} false boxes\n")
    print(
        "| cue | AUC | false boxes dropped keeping 99% of plates (cut below / above) |\n| --- | --- | --- |"
    )
    for k, name in enumerate(CUES):
        t, f = plates[:, k], others[:, k]
        auc = float(np.mean(t[:, None] > f[None, :]) + 0.5 * np.mean(t[:, None] == f[None, :]))
        below = float(np.mean(f < np.percentile(t, 1)))
        above = float(np.mean(f > np.percentile(t, 99)))
        print(f"| {name} | {auc:.2f} | {below:.2f} / {above:.2f} |")


if __name__ == "__main__":
    main()
