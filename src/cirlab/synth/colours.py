"""Colour arithmetic for the renderer: shades, contrasting ink for patterns, outline colours."""

from __future__ import annotations

from cirlab.synth.vocabulary import COLOURS, RGB

WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)

# How far a light shade moves towards white and a dark shade towards black.
_LIGHT_MIX = 0.55
_DARK_MIX = 0.5


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """The colour ``t`` of the way from ``a`` to ``b``."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def luminance(rgb: RGB) -> float:
    """Perceived brightness in 0..255 (ITU-R BT.601 weights)."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def fabric_colour(colour: str, shade: str) -> RGB:
    """The RGB of a named colour in a shade."""
    base = COLOURS[colour]
    if shade == "light":
        return mix(base, WHITE, _LIGHT_MIX)
    if shade == "dark":
        return mix(base, BLACK, _DARK_MIX)
    return base


def ink(fabric: RGB) -> RGB:
    """The colour a pattern is printed in on ``fabric``: dark on light fabric, light on dark."""
    return mix(fabric, BLACK, 0.6) if luminance(fabric) > 150 else mix(fabric, WHITE, 0.78)


def outline(fabric: RGB) -> RGB:
    """Seam and edge colour of ``fabric``."""
    return mix(fabric, BLACK, 0.5)


def inside(fabric: RGB) -> RGB:
    """The shadowed inside of the garment, seen through the neckline."""
    return mix(fabric, BLACK, 0.4)
