"""Tests of obscure() and draw_boxes(): what changes, what must stay byte-identical."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from veil.engine.detections import Detections
from veil.engine.redactors import DEFAULT_STYLES, ObscureStyle, StylesByLabel, draw_boxes, obscure

Frame = npt.NDArray[np.uint8]

HEIGHT, WIDTH = 240, 320
BOX = (100.0, 60.0, 200.0, 160.0)  # 100 x 100, well inside the frame
FILL_BGR = (10, 200, 30)
METHODS = ["blur", "pixelate", "fill"]
SHAPES = ["ellipse", "rectangle"]


def noise_frame(seed: int = 0) -> Frame:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def faces(*boxes: tuple[float, float, float, float], label: str = "face") -> Detections:
    return Detections.from_boxes(list(boxes), [0.9] * len(boxes), label)


def only(style: ObscureStyle) -> StylesByLabel:
    return StylesByLabel(default=style)


def styled(method: str, shape: str, **kwargs: float) -> StylesByLabel:
    return only(ObscureStyle(method=method, shape=shape, color_bgr=FILL_BGR, **kwargs))  # type: ignore[arg-type]


def centre(frame: Frame, box: tuple[float, float, float, float] = BOX) -> Frame:
    """The middle half of the box in each direction, well inside any mask shape."""
    x0, y0, x1, y1 = (int(v) for v in box)
    qw, qh = (x1 - x0) // 4, (y1 - y0) // 4
    return frame[y0 + qh : y1 - qh, x0 + qw : x1 - qw]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", METHODS)
def test_inside_is_obscured(method: str, shape: str) -> None:
    frame = noise_frame()
    out = obscure(frame, faces(BOX), styled(method, shape))
    inside = centre(out)
    if method == "fill":
        assert (inside == np.array(FILL_BGR, np.uint8)).all()
    else:
        assert inside.astype(np.float64).var() < centre(frame).astype(np.float64).var() / 20
        assert (inside != centre(frame)).mean() > 0.9


@pytest.mark.parametrize("mask_scale", [1.0, 1.3, 2.0])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", METHODS)
def test_outside_scaled_mask_is_byte_identical(method: str, shape: str, mask_scale: float) -> None:
    frame = noise_frame()
    out = obscure(frame, faces(BOX), styled(method, shape, mask_scale=mask_scale))
    x0, y0, x1, y1 = BOX
    grow_x, grow_y = (x1 - x0) * (mask_scale - 1) / 2, (y1 - y0) * (mask_scale - 1) / 2
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[int(y0 - grow_y) - 1 : int(y1 + grow_y) + 1, int(x0 - grow_x) - 1 : int(x1 + grow_x) + 1] = False
    assert np.array_equal(out[outside], frame[outside])
    assert not np.array_equal(out, frame)


@pytest.mark.parametrize("method", METHODS)
def test_input_frame_is_not_modified(method: str) -> None:
    frame = noise_frame()
    before = frame.copy()
    out = obscure(frame, faces(BOX, (150, 100, 260, 200)), styled(method, "ellipse"))
    assert np.array_equal(frame, before)
    assert out is not frame
    assert out.shape == frame.shape
    assert out.dtype == np.uint8


@pytest.mark.parametrize(
    ("shape", "corner_changes"),
    [("ellipse", False), ("rectangle", True)],
)
@pytest.mark.parametrize("method", METHODS)
def test_shape_decides_the_corners(method: str, shape: str, corner_changes: bool) -> None:
    frame = noise_frame()
    out = obscure(frame, faces(BOX), styled(method, shape, mask_scale=1.0, soft_edge=0.0))
    x0, y0, x1, y1 = (int(v) for v in BOX)
    corners = [(y0 + 1, x0 + 1), (y0 + 1, x1 - 2), (y1 - 2, x0 + 1), (y1 - 2, x1 - 2)]
    changed = [not np.array_equal(out[r, c], frame[r, c]) for r, c in corners]
    assert changed == [corner_changes] * 4


def test_soft_edge_blends_towards_the_mask_border() -> None:
    frame = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    style = ObscureStyle(method="fill", shape="rectangle", mask_scale=1.0, soft_edge=0.2, color_bgr=(0, 0, 0))
    out = obscure(frame, faces(BOX), only(style))
    row = out[110, 100:150, 0].astype(int)  # from the left edge of the box in to its middle
    assert 0 < row[0] < 200  # feathered, neither original nor fill
    assert np.all(np.diff(row) <= 0)  # darkens steadily inwards
    assert row[-1] == 0


def test_hard_edge_is_all_or_nothing() -> None:
    frame = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    style = ObscureStyle(method="fill", shape="ellipse", soft_edge=0.0, color_bgr=(0, 0, 0))
    out = obscure(frame, faces(BOX), only(style))
    assert set(np.unique(out).tolist()) == {0, 200}


EDGE_BOXES = {
    "top-left, half outside": (-50.0, -40.0, 50.0, 60.0),
    "bottom-right, half outside": (270.0, 190.0, 400.0, 300.0),
    "wider than the frame": (-100.0, 50.0, 500.0, 150.0),
    "touching the right edge": (300.0, 100.0, 320.0, 130.0),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("box", EDGE_BOXES.values(), ids=EDGE_BOXES.keys())
def test_boxes_at_the_frame_edge_are_clipped(box: tuple[float, float, float, float], method: str) -> None:
    frame = noise_frame()
    out = obscure(frame, faces(box), styled(method, "rectangle", mask_scale=1.0, soft_edge=0.0))
    x0, y0, x1, y1 = (
        int(np.clip(v, 0, lim)) for v, lim in zip(box, (WIDTH, HEIGHT, WIDTH, HEIGHT), strict=True)
    )
    visible = out[y0:y1, x0:x1]
    assert visible.size > 0
    assert (visible != frame[y0:y1, x0:x1]).mean() > 0.5
    outside = np.ones((HEIGHT, WIDTH), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], frame[outside])


IGNORED_BOXES = {
    "zero width": (100.0, 60.0, 100.0, 160.0),
    "zero height": (100.0, 60.0, 200.0, 60.0),
    "inverted": (200.0, 160.0, 100.0, 60.0),
    "wholly outside": (400.0, 300.0, 500.0, 400.0),
    "not finite": (np.nan, 60.0, 200.0, 160.0),
}


@pytest.mark.parametrize("box", IGNORED_BOXES.values(), ids=IGNORED_BOXES.keys())
def test_boxes_without_visible_area_are_ignored(box: tuple[float, float, float, float]) -> None:
    frame = noise_frame()
    assert np.array_equal(obscure(frame, faces(box), DEFAULT_STYLES), frame)


def test_empty_detections_return_an_equal_copy() -> None:
    frame = noise_frame()
    out = obscure(frame, Detections.empty(), DEFAULT_STYLES)
    assert np.array_equal(out, frame)
    assert out is not frame
    assert not np.shares_memory(out, frame)


@pytest.mark.parametrize("method", METHODS)
def test_the_same_boxes_in_any_order_give_the_same_frame(method: str) -> None:
    """Each effect reads what the boxes before it obscured, so overlapping masks depend on the order; a
    document read back from an annotation format lists a frame's boxes in another order."""
    boxes = Detections.merge(
        [faces((100, 60, 200, 160), (150, 100, 260, 200)), faces((90, 150, 170, 230), label="plate")]
    )
    frame = noise_frame()

    outputs = [obscure(frame, boxes[np.array(order)]) for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0])]

    assert all(np.array_equal(out, outputs[0]) for out in outputs[1:])


def test_styles_are_chosen_per_label_with_a_fallback() -> None:
    frame = noise_frame()
    plate_box, other_box = (20.0, 180.0, 80.0, 210.0), (230.0, 20.0, 300.0, 90.0)
    detections = Detections.merge(
        [faces(BOX), faces(plate_box, label="plate"), faces(other_box, label="person")]
    )
    styles = StylesByLabel(
        default=ObscureStyle(method="fill", color_bgr=(1, 2, 3)),
        per_label={"plate": ObscureStyle(method="fill", shape="rectangle", color_bgr=(9, 8, 7))},
    )
    out = obscure(frame, detections, styles)
    assert (centre(out) == (1, 2, 3)).all()
    assert (centre(out, plate_box) == (9, 8, 7)).all()
    assert (centre(out, other_box) == (1, 2, 3)).all()


def test_many_boxes_on_a_video_frame() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    xs, ys = np.meshgrid(np.arange(20, 1200, 150), np.arange(20, 650, 160))
    boxes = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + 90, ys.ravel() + 110], axis=1)
    out = obscure(frame, Detections.from_boxes(boxes, np.ones(len(boxes)), "face"), DEFAULT_STYLES)
    for x0, y0, x1, y1 in boxes:
        assert centre(out, (x0, y0, x1, y1)).astype(float).var() < centre(frame, (x0, y0, x1, y1)).var() / 20


@pytest.mark.parametrize(
    "frame",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32)],
    ids=["gray", "bgra", "float"],
)
def test_frames_of_the_wrong_kind_are_refused(frame: Frame) -> None:
    with pytest.raises(ValueError, match="uint8"):
        obscure(frame, faces((1, 1, 5, 5)), DEFAULT_STYLES)


def test_draw_boxes_outlines_on_a_copy() -> None:
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    detections = faces(BOX, (-20.0, 200.0, 60.0, 260.0))
    out = draw_boxes(frame, detections)
    assert not frame.any()
    x0, y0, x1, y1 = (int(v) for v in BOX)
    assert out[(y0 + y1) // 2, x0].any()  # left edge of the outline
    assert out[y1 - 1, (x0 + x1) // 2].any()  # bottom edge
    assert not out[(y0 + y1) // 2, (x0 + x1) // 2].any()  # outline, not fill
    assert out[y0 - 5, x0 + 5].any()  # caption above the box
    assert out[HEIGHT - 10, 0].any()  # clipped box still drawn at the frame edge


def test_draw_boxes_without_detections_is_an_equal_copy() -> None:
    frame = noise_frame()
    out = draw_boxes(frame, Detections.empty())
    assert np.array_equal(out, frame)
    assert out is not frame
