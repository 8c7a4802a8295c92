"""How a region is obscured: method, shape and size, chosen per label."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_STYLES", "ObscureStyle", "Shape", "StyleMethod", "StylesByLabel"]

StyleMethod = Literal["blur", "pixelate", "fill"]
Shape = Literal["ellipse", "rectangle"]


@dataclass(frozen=True)
class ObscureStyle:
    """One way of obscuring a box.

    Attributes:
        method: "blur" (gaussian), "pixelate" or "fill" (solid colour).
        shape: "ellipse" or "rectangle" mask inside the (scaled) box.
        mask_scale: the mask covers the box grown by this factor around its centre (1.0 = the box itself).
        blur_strength: gaussian sigma as a fraction of the box's shorter side.
        pixel_blocks: blocks across the box's shorter side when pixelating.
        color_bgr: fill colour, blue-green-red 0-255.
        soft_edge: width of the feathered border as a fraction of the box's shorter side (0 = hard edge).
    """

    method: StyleMethod = "blur"
    shape: Shape = "ellipse"
    mask_scale: float = 1.3
    blur_strength: float = 0.5
    pixel_blocks: int = 8
    color_bgr: tuple[int, int, int] = (0, 0, 0)
    soft_edge: float = 0.1


@dataclass(frozen=True)
class StylesByLabel:
    """The style for each label, with a fallback for labels not named."""

    default: ObscureStyle = field(default_factory=ObscureStyle)
    per_label: dict[str, ObscureStyle] = field(default_factory=dict)

    def for_label(self, label: str) -> ObscureStyle:
        return self.per_label.get(label, self.default)


DEFAULT_STYLES = StylesByLabel(
    default=ObscureStyle(),
    per_label={"plate": ObscureStyle(shape="rectangle", mask_scale=1.15)},
)
