"""The key-frame tracker: ids, coasting, interpolation, and never losing or changing a raw detection."""

from __future__ import annotations

import numpy as np
import pytest

from veil.engine.detections import Detections
from veil.engine.tracking import KeyframeTracker, TrackerConfig, fill_between


def faces(*boxes: tuple[float, float, float, float], label: str = "face") -> Detections:
    return Detections.from_boxes(list(boxes), [0.9] * len(boxes), label)


def test_every_raw_detection_comes_back_unchanged_with_an_id() -> None:
    tracker = KeyframeTracker()
    tracker.update(0, faces((10, 10, 50, 50)))
    raw = faces((12, 10, 52, 50), (200, 200, 240, 240), (14, 12, 54, 52))
    before = raw.xyxy.copy()

    out = tracker.update(4, raw)

    np.testing.assert_array_equal(raw.xyxy, before)  # input not modified
    assert (raw.track_id == -1).all()
    np.testing.assert_array_equal(out.xyxy[:3], raw.xyxy)
    assert out.source[:3].tolist() == ["detected"] * 3
    assert len(set(out.track_id[:3].tolist())) == 3  # two near one track: one continues it, one starts anew
    assert out.track_id[0] == 0


@pytest.mark.parametrize(
    ("second", "same_track"),
    [
        ((14, 10, 54, 50), True),  # overlaps
        ((52, 10, 92, 50), True),  # no overlap, centre 0.74 diagonals away
        ((150, 10, 190, 50), False),  # too far
    ],
)
def test_matching_by_overlap_or_centre_distance(second: tuple[float, ...], same_track: bool) -> None:
    tracker = KeyframeTracker()
    first = tracker.update(0, faces((10, 10, 50, 50)))
    out = tracker.update(8, faces(second))  # type: ignore[arg-type]
    assert bool(out.track_id[0] == first.track_id[0]) is same_track


def test_labels_never_match_each_other() -> None:
    tracker = KeyframeTracker()
    tracker.update(0, faces((10, 10, 50, 50)))
    out = tracker.update(1, faces((10, 10, 50, 50), label="plate"))
    assert out.track_id[0] == 1
    assert out.label.tolist() == ["plate", "face"]  # the face coasts, the plate starts a track


def test_missed_track_coasts_grown_then_ends() -> None:
    """GIVEN a face detected twice, moving 10 px right per key frame
    WHEN the detector then misses it
    THEN it stays covered, as "tracked", for max_misses key frames with a box covering where it was and
    where it was heading, growing each time; then it ends.
    """
    tracker = KeyframeTracker(TrackerConfig(max_misses=2, coast_grow=0.1))
    tracker.update(0, faces((0, 0, 40, 40)))
    tracker.update(1, faces((10, 0, 50, 40)))

    first = tracker.update(2, Detections.empty())
    second = tracker.update(3, Detections.empty())
    third = tracker.update(4, Detections.empty())

    assert first.source.tolist() == ["tracked"] and first.track_id.tolist() == [0]
    x1, y1, x2, y2 = first.xyxy[0]
    assert x1 <= 10 and x2 >= 60 and y1 < 0 and y2 > 40  # last box and predicted box, grown
    assert (second.xyxy[0, 2] - second.xyxy[0, 0]) > (x2 - x1)
    assert len(third) == 0


def test_coasting_track_is_picked_up_again_with_its_id() -> None:
    tracker = KeyframeTracker()
    tracker.update(0, faces((0, 0, 40, 40)))
    tracker.update(1, Detections.empty())
    out = tracker.update(2, faces((2, 0, 42, 40)))
    assert out.track_id.tolist() == [0]
    assert out.source.tolist() == ["detected"]


def keyed(rows: list[tuple[int, tuple[float, float, float, float]]]) -> Detections:
    boxes = Detections.from_boxes([b for _, b in rows], [0.8] * len(rows), "face")
    return Detections(boxes.xyxy, boxes.confidence, boxes.label, np.array([t for t, _ in rows]))


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ([(1, (0, 0, 40, 40))], [(1, (40, 20, 80, 60))], [(1, (10, 5, 50, 45))]),  # moved linearly
        ([(1, (0, 0, 40, 40))], [], [(1, (0, 0, 40, 40))]),  # ended: held
        ([], [(2, (40, 20, 80, 60))], [(2, (40, 20, 80, 60))]),  # started: backfilled
        ([], [], []),
    ],
)
def test_fill_between(
    before: list[tuple[int, tuple[float, float, float, float]]],
    after: list[tuple[int, tuple[float, float, float, float]]],
    expected: list[tuple[int, tuple[float, float, float, float]]],
) -> None:
    out = fill_between(keyed(before), keyed(after), 0.25)
    assert out.track_id.tolist() == [t for t, _ in expected]
    np.testing.assert_allclose(out.xyxy, np.array([b for _, b in expected], np.float32).reshape(-1, 4))
    assert set(out.source.tolist()) <= {"tracked"}


def test_tracks_of_labels_not_looked_for_are_carried_not_missed() -> None:
    tracker = KeyframeTracker(TrackerConfig(max_misses=1))
    tracker.update(0, faces((0, 0, 40, 40), label="plate"))
    for index in (1, 2, 3):  # only faces looked for: the plate is not missed, however long
        out = tracker.update(index, Detections.empty(), looked_for={"face"})
        assert out.track_id.tolist() == [0] and out.source.tolist() == ["tracked"]
    assert tracker.update(4, faces((1, 0, 41, 40), label="plate")).track_id.tolist() == [0]
