"""Fabric patterns (solid, stripes, polka dots, checks, floral print) painted in garment units.

Patterns are laid out in the garment's own coordinates, so they scale and rotate with it, and are
shifted by the image's nuisance phase so that two garments with the same pattern differ in pixels.
The caller masks the painted fabric with the garment's outline.
"""

from __future__ import annotations

import math
import random

from PIL import ImageDraw

from cirlab.synth.colours import RGB, mix
from cirlab.synth.nuisance import Nuisance
from cirlab.synth.placement import Placement

Bounds = tuple[float, float, float, float]

STRIPE_PERIOD = 0.13
DOT_SPACING, DOT_RADIUS = 0.15, 0.038
CHECK_PERIOD = 0.16
FLOWER_SPACING, PETAL_RADIUS, PETAL_DISTANCE = 0.22, 0.034, 0.04


def paint_pattern(draw: ImageDraw.ImageDraw, pattern: str, bounds: Bounds, place: Placement,
                  fabric: RGB, ink: RGB, nuisance: Nuisance) -> None:
    """Paint ``pattern`` in ``ink`` over the garment area ``bounds`` (the fabric colour is already there)."""
    if pattern == "solid":
        return
    painters = {"striped": _stripes, "polka dot": _dots, "checked": _checks, "floral": _floral}
    painters[pattern](draw, _padded(bounds), place, fabric, ink, nuisance)


def _padded(bounds: Bounds, pad: float = 0.3) -> Bounds:
    left, top, right, bottom = bounds
    return left - pad, top - pad, right + pad, bottom + pad


def _band(place: Placement, x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return place.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def _stripes(draw, bounds, place, fabric, ink, nuisance) -> None:
    left, top, right, bottom = bounds
    y = top - STRIPE_PERIOD * nuisance.pattern_phase[1]
    while y < bottom:
        draw.polygon(_band(place, left, y, right, y + STRIPE_PERIOD / 2), fill=ink)
        y += STRIPE_PERIOD


def _dots(draw, bounds, place, fabric, ink, nuisance) -> None:
    left, top, right, bottom = bounds
    radius = place.length(DOT_RADIUS)
    row, y = 0, top + DOT_SPACING * nuisance.pattern_phase[1]
    while y < bottom:
        x = left + DOT_SPACING * (nuisance.pattern_phase[0] + 0.5 * (row % 2))
        while x < right:
            cx, cy = place.point((x, y))
            draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=ink)
            x += DOT_SPACING
        y += DOT_SPACING
        row += 1


def _checks(draw, bounds, place, fabric, ink, nuisance) -> None:
    """Gingham: half-tone bands both ways, full ink where they cross."""
    left, top, right, bottom = bounds
    half = CHECK_PERIOD / 2
    tone = mix(fabric, ink, 0.5)
    xs, ys = [], []
    x = left - CHECK_PERIOD * nuisance.pattern_phase[0]
    while x < right:
        xs.append(x)
        x += CHECK_PERIOD
    y = top - CHECK_PERIOD * nuisance.pattern_phase[1]
    while y < bottom:
        ys.append(y)
        y += CHECK_PERIOD
    for y in ys:
        draw.polygon(_band(place, left, y, right, y + half), fill=tone)
    for x in xs:
        draw.polygon(_band(place, x, top, x + half, bottom), fill=tone)
    for y in ys:
        for x in xs:
            draw.polygon(_band(place, x, y, x + half, y + half), fill=ink)


def _floral(draw, bounds, place, fabric, ink, nuisance) -> None:
    """Scattered five-petal flowers with a fabric-coloured heart (rings of petals, unlike regular dots)."""
    rng = random.Random(nuisance.print_seed)
    left, top, right, bottom = bounds
    petal = place.length(PETAL_RADIUS)
    heart = place.length(PETAL_RADIUS * 0.55)
    y = top
    while y < bottom:
        x = left
        while x < right:
            cx = x + rng.uniform(0.2, 0.8) * FLOWER_SPACING
            cy = y + rng.uniform(0.2, 0.8) * FLOWER_SPACING
            turn = rng.uniform(0, 2 * math.pi / 5)
            for k in range(5):
                a = turn + 2 * math.pi * k / 5
                px, py = place.point((cx + PETAL_DISTANCE * math.cos(a), cy + PETAL_DISTANCE * math.sin(a)))
                draw.ellipse([px - petal, py - petal, px + petal, py + petal], fill=ink)
            hx, hy = place.point((cx, cy))
            draw.ellipse([hx - heart, hy - heart, hx + heart, hy + heart], fill=fabric)
            x += FLOWER_SPACING
        y += FLOWER_SPACING
