"""Veil's face detector: CenterFace at a low threshold, its weak boxes checked by an MTCNN stage.

CenterFace alone cannot have both more recall and fewer false boxes: its score separates weak faces from
other things poorly. A second network trained otherwise (MTCNN, facenet-pytorch's weights) confirms the weak
boxes, which lets the threshold go lower. On wider_dev (BENCHMARKS.md, "Issue 9: faces") each setting below
finds at least as many faces as CenterFace alone at 0.24 on every WIDER subset, with fewer false boxes:
2.49 -> 2.41 per photo, and on video key frames 1.79 -> 1.30.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from veil.engine.detectors.base import Detector, DetectorConfig
from veil.engine.detectors.centerface import CenterFaceDetector
from veil.engine.detectors.verified import VerifiedDetector
from veil.engine.verifiers.onet import ONET, RNET, MTCNNVerifier, NetSpec

__all__ = ["PHOTO_CHECK", "VIDEO_CHECK", "FaceCheck", "face_detector"]


@dataclass(frozen=True)
class FaceCheck:
    """How CenterFace's boxes are checked.

    Attributes:
        threshold: CenterFace's lowest score (when the config gives none).
        check_below: boxes scoring under this are shown to the verifier; the rest are kept.
        net: the MTCNN stage that checks them.
        min_face_probability: what the verifier must give a checked box to keep it.
    """

    threshold: float
    check_below: float
    net: NetSpec
    min_face_probability: float


# Photos: three passes find many tiny faces, on which O-Net is unsure; only near-sure rejections drop a box.
PHOTO_CHECK = FaceCheck(threshold=0.22, check_below=0.3, net=ONET, min_face_probability=0.02)
# Video key frames: one 640 px pass; R-Net separates its weak boxes well and costs 0.2 ms a box.
VIDEO_CHECK = FaceCheck(threshold=0.2, check_below=0.3, net=RNET, min_face_probability=0.3)


def face_detector(config: DetectorConfig, *, threads: int = 0) -> Detector:
    """CenterFace with its weak boxes verified, tuned for `config.purpose`; a threshold in `config` replaces
    the tuned one (the check stays).

    Raises:
        ModelError: a model file is missing or cannot be loaded.
    """
    check = VIDEO_CHECK if config.purpose == "video" else PHOTO_CHECK
    threshold = config.threshold if config.threshold is not None else check.threshold
    detector = CenterFaceDetector(replace(config, threshold=threshold))
    verifier = MTCNNVerifier(config.device, check.min_face_probability, net=check.net, threads=threads)
    return VerifiedDetector(detector, verifier, check.check_below)
