"""Nuisance variation: how a garment is photographed, independent of what it is.

Position, scale, a small rotation, the background's tint and the phase of the fabric pattern are
drawn per image, so two garments with equal attributes never give equal pixels; only an exact
duplicate (a copy of an image under another id) shares its nuisance with the original.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Nuisance:
    """Photographic variation of one image."""

    offset_x: float  # garment centre shift, as a fraction of the image side
    offset_y: float
    scale: float  # fraction of the largest size that fits the frame
    angle: float  # rotation in degrees, counter-clockwise
    background: RGB
    pattern_phase: tuple[float, float]  # shift of stripes/dots/checks, as a fraction of their period
    print_seed: int  # layout of a floral print

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded per image in ``synth_meta.json``)."""
        data = asdict(self)
        data["background"] = list(self.background)
        data["pattern_phase"] = list(self.pattern_phase)
        return data


def sample_nuisance(rng: random.Random) -> Nuisance:
    """Draw one image's nuisance from ``rng``."""
    base = rng.uniform(226, 250)
    tint = [rng.uniform(-7, 7) for _ in range(3)]
    background = tuple(round(min(255.0, max(0.0, base + t))) for t in tint)
    return Nuisance(
        offset_x=round(rng.uniform(-0.05, 0.05), 4),
        offset_y=round(rng.uniform(-0.04, 0.04), 4),
        scale=round(rng.uniform(0.84, 1.0), 4),
        angle=round(rng.uniform(-6.0, 6.0), 3),
        background=background,  # type: ignore[arg-type]
        pattern_phase=(round(rng.random(), 4), round(rng.random(), 4)),
        print_seed=rng.getrandbits(32),
    )
