from __future__ import annotations

import numpy as np
import pytest

from veil.engine.detections import Detections


def _two() -> Detections:
    return Detections.merge(
        [
            Detections.from_boxes([[0, 0, 10, 10]], [0.9], "face"),
            Detections.from_boxes([[5, 5, 50, 20]], [0.4], "plate"),
        ]
    )


def test_construction_normalises_types_and_defaults() -> None:
    d = _two()
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (2, 4)
    assert d.track_id.tolist() == [-1, -1]
    assert d.source.tolist() == ["detected", "detected"]
    assert d.label.tolist() == ["face", "plate"]


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError):
        Detections(np.zeros((2, 4)), np.zeros(3), np.array(["face", "face"]))


@pytest.mark.parametrize(
    ("index", "labels"),
    [
        (np.array([True, False]), ["face"]),
        (np.array([1]), ["plate"]),
        (slice(0, 0), []),
    ],
)
def test_indexing_returns_new_selection(index: object, labels: list[str]) -> None:
    d = _two()
    selected = d[index]  # type: ignore[index]
    assert selected.label.tolist() == labels
    assert len(d) == 2


def test_clipped_trims_to_frame_and_drops_empty_boxes() -> None:
    d = Detections.from_boxes([[-5, -5, 10, 10], [200, 200, 300, 300]], [0.9, 0.8], "face")
    clipped = d.clipped(100, 100)
    assert clipped.xyxy.tolist() == [[0, 0, 10, 10]]


def test_scaled_and_with_labels() -> None:
    d = _two().scaled(2.0, 0.5)
    assert d.xyxy[1].tolist() == [10, 2.5, 100, 10]
    assert d.with_labels(frozenset({"plate"})).label.tolist() == ["plate"]


def test_merge_of_nothing_is_empty() -> None:
    assert len(Detections.merge([])) == 0
    assert len(Detections.merge([Detections.empty(), Detections.empty()])) == 0
