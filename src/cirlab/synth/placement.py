"""Where a garment lands in the image: garment units → pixels (scale, rotation, shift)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cirlab.synth.nuisance import Nuisance
from cirlab.synth.shapes import Point, Silhouette

#: Share of the image side the garment's larger extent may fill before the nuisance scale.
FILL = 0.86


@dataclass(frozen=True)
class Placement:
    """An affine map from garment units to pixel coordinates."""

    scale: float  # pixels per garment unit
    unit_centre: Point  # garment point that lands on ``pixel_centre``
    pixel_centre: Point
    angle: float  # degrees, counter-clockwise on screen

    @classmethod
    def fit(cls, shape: Silhouette, nuisance: Nuisance, side: int) -> Placement:
        """Fit ``shape`` into a ``side`` × ``side`` image, then apply the nuisance shift, scale and rotation."""
        left, top, right, bottom = shape.bounds()
        extent = max(right - left, bottom - top)
        scale = FILL * side / extent * nuisance.scale
        centre = ((left + right) / 2, (top + bottom) / 2)
        pixel = (side / 2 + nuisance.offset_x * side, side / 2 + nuisance.offset_y * side)
        return cls(scale=scale, unit_centre=centre, pixel_centre=pixel, angle=nuisance.angle)

    def __post_init__(self) -> None:
        a = math.radians(self.angle)  # cached: every pattern element is placed through ``point``
        object.__setattr__(self, "_cos", self.scale * math.cos(a))
        object.__setattr__(self, "_sin", self.scale * math.sin(a))

    def point(self, p: Point) -> Point:
        """Pixel coordinates of garment point ``p``."""
        x, y = p[0] - self.unit_centre[0], p[1] - self.unit_centre[1]
        return (self.pixel_centre[0] + x * self._cos + y * self._sin,
                self.pixel_centre[1] - x * self._sin + y * self._cos)

    def polygon(self, points: list[Point]) -> list[Point]:
        """Pixel coordinates of every point of a polygon or polyline."""
        return [self.point(p) for p in points]

    def length(self, units: float) -> float:
        """A length in pixels."""
        return units * self.scale
