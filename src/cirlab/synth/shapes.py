"""Garment silhouettes as polygons in garment units (y grows downwards, the neck's centre at x = 0).

Each category has its own outline, so categories are told apart at a glance:

* **dress** — fitted bodice, waist seam, A-line skirt; length moves the hem from above the knee to the floor;
* **shirt** — broad square shoulders, curved shirt-tail hem, button placket and a chest pocket;
* **toptee** — a T-shirt (or tank) with a straight hem band.

Sleeves are quadrilaterals hanging from the shoulder; their length and angle follow the sleeve
attribute. The neckline is an opening drawn in the garment's darker inside colour (a collar adds
two flaps and a band). A renderer scales, rotates and places these shapes; nothing here knows pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cirlab.synth.vocabulary import Garment

Point = tuple[float, float]

NECK_HALF_WIDTH = 0.13
BACK_NECK_DEPTH = 0.035


@dataclass
class Silhouette:
    """The parts of one garment, in garment units."""

    body: list[Point]
    sleeves: list[list[Point]] = field(default_factory=list)
    opening: list[Point] = field(default_factory=list)  # front neckline, shows the inside of the garment
    collar: list[list[Point]] = field(default_factory=list)  # pieces drawn over the opening
    lines: list[list[Point]] = field(default_factory=list)  # seams, placket, pocket, hem and cuff bands
    buttons: list[Point] = field(default_factory=list)

    def fabric(self) -> list[list[Point]]:
        """Every polygon cut from the garment's fabric (patterned)."""
        return [self.body, *self.sleeves]

    def bounds(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of every part."""
        points = [p for polygon in (*self.fabric(), *self.collar) for p in polygon]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class _SleeveShape:
    angle: float  # degrees below horizontal
    length: float
    cuff: float  # width at the cuff
    band: bool  # draw a cuff band


# Sleeve shapes per category and sleeve value (sleeveless has none).
_SLEEVE_SHAPES: Mapping[str, Mapping[str, _SleeveShape]] = MappingProxyType({
    "dress": MappingProxyType({"short sleeves": _SleeveShape(40, 0.21, 0.16, False),
                               "long sleeves": _SleeveShape(66, 0.80, 0.11, True)}),
    "shirt": MappingProxyType({"short sleeves": _SleeveShape(40, 0.28, 0.20, False),
                               "three-quarter sleeves": _SleeveShape(58, 0.56, 0.16, True),
                               "long sleeves": _SleeveShape(68, 0.84, 0.14, True)}),
    "toptee": MappingProxyType({"short sleeves": _SleeveShape(34, 0.23, 0.19, False),
                                "long sleeves": _SleeveShape(66, 0.78, 0.12, True)}),
})

# Hem depth (at the centre) and the hem's half-width per length value.
_DRESS_HEMS: Mapping[str, tuple[float, float]] = MappingProxyType({
    "mini length": (1.00, 0.42), "knee length": (1.40, 0.50), "maxi length": (1.95, 0.58)})
_TOP_HEMS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "shirt": MappingProxyType({"cropped": 0.80, "hip length": 1.08, "tunic length": 1.38}),
    "toptee": MappingProxyType({"cropped": 0.68, "hip length": 0.98, "tunic length": 1.32}),
})
# How far down the front neckline opening reaches.
NECK_DEPTHS: Mapping[str, float] = MappingProxyType({
    "crew neck": 0.08, "v-neck": 0.28, "scoop neck": 0.20, "square neck": 0.15, "collar": 0.16})


def silhouette(garment: Garment) -> Silhouette:
    """The silhouette of ``garment`` (its category, sleeves, length and neckline)."""
    build = {"dress": _dress, "shirt": _shirt, "toptee": _toptee}[garment.category]
    shape = build(garment)
    _add_neckline(shape, garment.neckline)
    return shape


def _mirror(right: list[Point]) -> list[Point]:
    """A closed outline from its right half (listed from the top centre down to the bottom centre)."""
    left = [(-x, y) for x, y in reversed(right) if x != 0]
    return right + left


def _back_neck(collar: bool) -> list[Point]:
    """The right half of the back neckline, from the centre out to the shoulder seam."""
    if collar:
        return [(0.0, 0.0), (NECK_HALF_WIDTH, 0.0)]
    return [(NECK_HALF_WIDTH * math.sin(t * math.pi / 12), BACK_NECK_DEPTH * math.cos(t * math.pi / 12))
            for t in range(7)]


def _sleeve(top: Point, armpit: Point, shape: _SleeveShape) -> tuple[list[Point], list[Point] | None]:
    """A right sleeve hanging from ``top`` (shoulder tip) and ``armpit``, and its cuff band line."""
    a = math.radians(shape.angle)
    d, n = (math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))
    end_top = (top[0] + shape.length * d[0], top[1] + shape.length * d[1])
    end_bottom = (end_top[0] + shape.cuff * n[0], end_top[1] + shape.cuff * n[1])
    band = None
    if shape.band:
        back = 0.07
        band_top = (end_top[0] - back * d[0], end_top[1] - back * d[1])
        band = [band_top, (band_top[0] + shape.cuff * n[0], band_top[1] + shape.cuff * n[1])]
    return [top, end_top, end_bottom, armpit], band


def _add_sleeves(shape: Silhouette, category: str, sleeves: str, top: Point, armpit: Point) -> None:
    spec = _SLEEVE_SHAPES[category].get(sleeves)
    if spec is None:
        return
    right, band = _sleeve(top, armpit, spec)
    shape.sleeves = [right, [(-x, y) for x, y in right]]
    if band:
        shape.lines += [band, [(-x, y) for x, y in band]]


def _dress(garment: Garment) -> Silhouette:
    hem, half = _DRESS_HEMS[garment.length]
    neck = _back_neck(garment.neckline == "collar")
    if garment.sleeves == "sleeveless":
        shoulder = [(0.20, 0.01), (0.205, 0.14), (0.26, 0.30)]
    else:
        shoulder = [(0.30, 0.04), (0.28, 0.30)]
    right = [*neck, *shoulder, (0.22, 0.50), (0.25, 0.60), (half, hem - 0.03), (half * 0.5, hem - 0.005), (0.0, hem)]
    shape = Silhouette(body=_mirror(right), lines=[[(-0.22, 0.50), (0.22, 0.50)]])
    _add_sleeves(shape, "dress", garment.sleeves, (0.30, 0.04), (0.28, 0.30))
    return shape


def _shirt(garment: Garment) -> Silhouette:
    hem = _TOP_HEMS["shirt"][garment.length]
    neck = _back_neck(garment.neckline == "collar")
    right = [*neck, (0.42, 0.06), (0.40, 0.34), (0.39, hem - 0.10), (0.30, hem - 0.04), (0.15, hem - 0.005), (0.0, hem)]
    pocket = [(0.14, 0.27), (0.29, 0.27), (0.29, 0.43), (0.14, 0.43), (0.14, 0.27)]
    shape = Silhouette(body=_mirror(right), lines=[pocket])
    _add_sleeves(shape, "shirt", garment.sleeves, (0.42, 0.06), (0.40, 0.34))
    top = NECK_DEPTHS[garment.neckline]
    shape.lines.append([(0.0, top), (0.0, hem)])
    y = top + 0.08
    while y < hem - 0.06:
        shape.buttons.append((0.0, y))
        y += 0.15
    return shape


def _toptee(garment: Garment) -> Silhouette:
    hem = _TOP_HEMS["toptee"][garment.length]
    neck = _back_neck(garment.neckline == "collar")
    flare = 0.04 * (hem - 0.3)
    if garment.sleeves == "sleeveless":
        shoulder = [(0.19, 0.0), (0.20, 0.14), (0.31, 0.30)]
        side = 0.31
    else:
        shoulder = [(0.36, 0.05), (0.34, 0.30)]
        side = 0.34
    right = [*neck, *shoulder, (side + flare, hem), (0.0, hem)]
    band = side + flare * 0.9
    shape = Silhouette(body=_mirror(right), lines=[[(-band, hem - 0.06), (band, hem - 0.06)]])
    _add_sleeves(shape, "toptee", garment.sleeves, (0.36, 0.05), (0.34, 0.30))
    return shape


def _add_neckline(shape: Silhouette, neckline: str) -> None:
    """The front opening of ``neckline`` (and the collar pieces)."""
    w, depth = NECK_HALF_WIDTH, NECK_DEPTHS[neckline]
    if neckline in ("crew neck", "scoop neck"):
        rx = w if neckline == "crew neck" else 0.17
        shape.opening = [(rx * math.cos(t * math.pi / 16), depth * math.sin(t * math.pi / 16)) for t in range(17)]
    elif neckline == "v-neck":
        shape.opening = [(w, 0.0), (0.0, depth), (-w, 0.0)]
    elif neckline == "square neck":
        shape.opening = [(0.14, 0.0), (0.14, depth), (-0.14, depth), (-0.14, 0.0)]
    else:  # collar: a small opening under two flaps and a band standing behind the neck
        shape.opening = [(0.10, 0.0), (0.0, depth), (-0.10, 0.0)]
        flap = [(0.0, 0.05), (0.12, -0.02), (0.175, 0.03), (0.075, 0.17)]
        band = [(-0.12, -0.04), (0.12, -0.04), (0.135, 0.005), (-0.135, 0.005)]
        shape.collar = [band, flap, [(-x, y) for x, y in flap]]
