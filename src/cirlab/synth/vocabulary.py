"""The attribute vocabulary of the synthetic garments and the :class:`Garment` record.

A garment is a category plus six attributes, in this fixed order:

=============  ==========================================================================
attribute      values
=============  ==========================================================================
``colour``     13 named hues (red, orange, yellow, green, teal, turquoise, blue, purple, magenta,
               pink, brown, grey, beige)
``shade``      light, medium, dark (medium is not written: "blue", "light blue", "dark blue")
``pattern``    solid, striped, polka dot, checked, floral
``sleeves``    dress/toptee: sleeveless, short, long; shirt: short, three-quarter, long
``length``     dress: mini, knee, maxi; shirt/toptee: cropped, hip, tunic
``neckline``   crew neck, v-neck, scoop neck, square neck, collar
=============  ==========================================================================

Colour and shade are separate attributes (so "is darker" changes one attribute and "is dark red"
from "light blue" changes two) but are written as one tag phrase, giving the five tag phrases of
``tags/asin2attr.*.json`` in the order colour, pattern, sleeves, length, neckline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

RGB = tuple[int, int, int]

#: Attribute names in their fixed order.
ATTRIBUTES: tuple[str, ...] = ("colour", "shade", "pattern", "sleeves", "length", "neckline")

#: The medium shade of every named hue.
COLOURS: MappingProxyType[str, RGB] = MappingProxyType({
    "red": (205, 35, 45),
    "orange": (240, 125, 30),
    "yellow": (240, 205, 45),
    "green": (45, 155, 70),
    "teal": (0, 110, 120),
    "turquoise": (60, 205, 215),
    "blue": (40, 85, 205),
    "purple": (125, 55, 175),
    "magenta": (205, 45, 155),
    "pink": (245, 130, 175),
    "brown": (115, 62, 42),
    "grey": (128, 128, 128),
    "beige": (220, 200, 160),
})

#: Shades from lightest to darkest; the order gives "lighter" and "darker" their meaning.
SHADES: tuple[str, ...] = ("light", "medium", "dark")
PATTERNS: tuple[str, ...] = ("solid", "striped", "polka dot", "checked", "floral")
NECKLINES: tuple[str, ...] = ("crew neck", "v-neck", "scoop neck", "square neck", "collar")

#: Every sleeve length from shortest to longest; a category uses a subset in this order.
SLEEVE_ORDER: tuple[str, ...] = ("sleeveless", "short sleeves", "three-quarter sleeves", "long sleeves")

_SLEEVES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "dress": ("sleeveless", "short sleeves", "long sleeves"),
    "shirt": ("short sleeves", "three-quarter sleeves", "long sleeves"),
    "toptee": ("sleeveless", "short sleeves", "long sleeves"),
})
#: Garment lengths per category, from shortest to longest.
_LENGTHS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "dress": ("mini length", "knee length", "maxi length"),
    "shirt": ("cropped", "hip length", "tunic length"),
    "toptee": ("cropped", "hip length", "tunic length"),
})


def attribute_values(category: str, attribute: str) -> tuple[str, ...]:
    """The values ``attribute`` takes in ``category``, ordered where the attribute has an order."""
    if attribute == "colour":
        return tuple(COLOURS)
    if attribute == "shade":
        return SHADES
    if attribute == "pattern":
        return PATTERNS
    if attribute == "neckline":
        return NECKLINES
    if attribute == "sleeves":
        return _SLEEVES[category]
    if attribute == "length":
        return _LENGTHS[category]
    raise KeyError(f"unknown attribute {attribute!r}")


def vocabulary(categories: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """The full vocabulary of ``categories`` as JSON-ready lists (category → attribute → values)."""
    return {c: {a: list(attribute_values(c, a)) for a in ATTRIBUTES} for c in categories}


def combinations(category: str) -> int:
    """How many distinct attribute combinations ``category`` has."""
    count = 1
    for attribute in ATTRIBUTES:
        count *= len(attribute_values(category, attribute))
    return count


def colour_phrase(colour: str, shade: str) -> str:
    """"light blue", "blue" (medium) or "dark blue"."""
    return colour if shade == "medium" else f"{shade} {colour}"


@dataclass(frozen=True)
class Garment:
    """One garment's category and attribute values (the ground truth an image is drawn from)."""

    category: str
    colour: str
    shade: str
    pattern: str
    sleeves: str
    length: str
    neckline: str

    def values(self) -> tuple[str, ...]:
        """Attribute values in :data:`ATTRIBUTES` order."""
        return tuple(getattr(self, a) for a in ATTRIBUTES)

    def codes(self) -> tuple[int, ...]:
        """Each value's index in its vocabulary, in :data:`ATTRIBUTES` order (for fast comparisons)."""
        return tuple(attribute_values(self.category, a).index(getattr(self, a)) for a in ATTRIBUTES)

    def differences(self, other: Garment) -> list[str]:
        """Names of the attributes whose values differ from ``other``'s, in :data:`ATTRIBUTES` order."""
        return [a for a in ATTRIBUTES if getattr(self, a) != getattr(other, a)]

    def tags(self) -> list[str]:
        """The five tag phrases: colour, pattern, sleeves, length, neckline."""
        return [colour_phrase(self.colour, self.shade), self.pattern, self.sleeves, self.length, self.neckline]

    def to_dict(self) -> dict[str, str]:
        """Attribute name → value (the category is recorded beside it by the caller)."""
        return {a: getattr(self, a) for a in ATTRIBUTES}

    @classmethod
    def from_dict(cls, category: str, data: dict[str, Any]) -> Garment:
        """Inverse of :meth:`to_dict`."""
        return cls(category=category, **{a: str(data[a]) for a in ATTRIBUTES})

    def replace(self, attribute: str, value: str) -> Garment:
        """A copy with one attribute changed."""
        values = self.to_dict()
        values[attribute] = value
        return Garment(category=self.category, **values)
