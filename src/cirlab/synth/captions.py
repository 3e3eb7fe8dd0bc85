"""Relative captions written the way FashionIQ annotators write them.

Two annotators each describe how the target differs from the reference in a short, lower-case
phrase that leaves the verb's subject out: "is red with stripes", "has longer sleeves and is
darker", "make it a maxi dress". The generator follows that grammar:

* A change is split into *aspects*: colour (hue and shade together), pattern, sleeves, length and
  neckline. Each aspect has absolute phrasings ("is dark red", "has polka dots", "is sleeveless"),
  relative ones for ordered attributes ("is darker", "has shorter sleeves", "is much longer") and
  vague ones ("has a different pattern", "has a lower neckline").
* Each caption mentions only part of the change (:func:`_plan`), so the reference image is needed
  to find the target; together the two captions usually pin the change down.
* At a raised ambiguity level one changed aspect of some triplets is kept *vague*: the captions
  describe it only with phrases that pin none of its attributes (:func:`vague_clauses`: "is a
  different color", "has a different pattern", "is darker" from light).
* A phrase *covers* a changed attribute when it pins its new value given the reference:
  "is darker" covers a change from medium to dark, but not from light (medium and dark are both
  darker). :class:`CaptionPair` records which changed attributes the pair covers.
* Clauses are joined as annotators join them: "is red and striped", "is red with stripes",
  "has stripes and long sleeves", "is red, striped and has long sleeves"; sometimes a caption
  restates an unchanged attribute ("is still floral", "still has long sleeves"), starts with "it",
  drops its verb ("darker and longer") or ends in a full stop or spaces.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cirlab.synth.vocabulary import ATTRIBUTES, SHADES, Garment, attribute_values, colour_phrase

#: The word a category is called in a caption.
NOUNS: Mapping[str, str] = MappingProxyType({"dress": "dress", "shirt": "shirt", "toptee": "top"})

#: Attributes described together; every other attribute is its own aspect.
ASPECTS: tuple[tuple[str, ...], ...] = (("colour", "shade"), ("pattern",), ("sleeves",), ("length",), ("neckline",))

# Weight of a phrase that covers the whole aspect versus one that covers less, for the first
# mention of an aspect and for a second mention (in the other caption).
_FULL, _PARTIAL_FIRST, _PARTIAL_SECOND = 1.0, 0.2, 0.6
_CONTEXT_PROBABILITY = 0.15


@dataclass(frozen=True)
class Clause:
    """One phrase about the target: a verb and its complement, e.g. ("has", "long sleeves")."""

    verb: str  # "is", "has", "still has" or "make" ("make it ...", only alone in a caption)
    text: str
    covers: frozenset[str] = frozenset()  # changed attributes whose new value this phrase pins down
    with_text: str | None = None  # the phrase after "with" when it follows an "is" clause ("with stripes")
    weight: float = _FULL


@dataclass(frozen=True)
class CaptionPair:
    """The two captions of a triplet and what they say about the change."""

    captions: tuple[str, str]
    changed: tuple[str, ...]
    covered: frozenset[str]  # changed attributes pinned down by at least one caption

    @property
    def complete(self) -> bool:
        """Whether the two captions together pin down every changed attribute."""
        return self.covered >= set(self.changed)


def relative_captions(reference: Garment, target: Garment, rng: random.Random,
                      vague: tuple[str, ...] | None = None) -> CaptionPair:
    """Two relative captions saying how ``target`` differs from ``reference`` (1–3 attributes).

    ``vague``, one of the changed aspects (an entry of :data:`ASPECTS`), is described only with
    :func:`vague_clauses`, so that the captions leave its new value open. Without it the random
    draws are those of earlier versions, caption for caption.
    """
    changed = tuple(reference.differences(target))
    if not changed:
        raise ValueError("reference and target have the same attributes; there is no change to caption")
    aspects = [aspect for aspect in ASPECTS if set(aspect) & set(changed)]
    if vague is not None and vague not in aspects:
        raise ValueError(f"aspect {vague} did not change, so it cannot be kept vague")
    rng.shuffle(aspects)
    first_plan, second_plan = _plan(len(aspects), rng)
    if rng.random() < 0.5:
        first_plan, second_plan = second_plan, first_plan
    used: dict[tuple[str, ...], Clause] = {}
    texts, covered = [], set()
    for plan in (first_plan, second_plan):
        context = _context_clause(reference, target, changed, rng) if rng.random() < _CONTEXT_PROBABILITY else None
        alone = len(plan) == 1 and context is None
        clauses = []
        for index in plan:
            aspect = aspects[index]
            options = (vague_clauses if aspect == vague else _aspect_clauses)(aspect, reference, target)
            clause = _choose(options, rng, alone, used.get(aspect))
            used.setdefault(aspect, clause)
            clauses.append(clause)
            covered |= clause.covers
        if context is not None:
            clauses.append(context)
        texts.append(_sentence(clauses, NOUNS[target.category], rng))
    return CaptionPair((texts[0], texts[1]), changed, frozenset(covered) & frozenset(changed))


def draw_vague_aspect(changed: tuple[str, ...], fraction: float, rng: random.Random) -> tuple[str, ...] | None:
    """With probability ``fraction``, one of the aspects of a change of ``changed`` to keep vague (uniformly)."""
    if rng.random() >= fraction:
        return None
    return rng.choice([aspect for aspect in ASPECTS if set(aspect) & set(changed)])


def _plan(aspect_count: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """Which aspects (indices) each caption mentions."""
    options: list[tuple[tuple[list[int], list[int]], float]]
    if aspect_count == 1:
        options = [(([0], [0]), 1.0)]
    elif aspect_count == 2:
        options = [(([0], [1]), 0.55), (([0, 1], [1]), 0.15), (([0, 1], [0]), 0.1), (([0], [0, 1]), 0.1),
                   (([0], [0]), 0.1)]
    else:
        options = [(([0, 1], [2]), 0.4), (([0], [1, 2]), 0.25), (([0, 1], [1, 2]), 0.1), (([0, 1, 2], [1]), 0.1),
                   (([0, 1], [1]), 0.15)]
    plans, weights = zip(*options)
    first, second = rng.choices(plans, weights=weights)[0]
    return list(first), list(second)


def _choose(clauses: list[Clause], rng: random.Random, alone: bool, earlier: Clause | None) -> Clause:
    """One clause, weighted; imperative ones only when alone, never the same text as ``earlier``."""
    pool = [c for c in clauses if (alone or c.verb != "make") and (earlier is None or c.text != earlier.text)]
    if not pool:
        pool = clauses
    partial = _PARTIAL_FIRST if earlier is None else _PARTIAL_SECOND
    whole = _covers_all(clauses)
    weights = [c.weight * (1.0 if c.covers >= whole else partial) for c in pool]
    return rng.choices(pool, weights=weights)[0]


def _covers_all(clauses: list[Clause]) -> frozenset[str]:
    return frozenset().union(*(c.covers for c in clauses))


# ------------------------------------------------------------------------------------------ aspects
def _aspect_clauses(aspect: tuple[str, ...], reference: Garment, target: Garment) -> list[Clause]:
    builders: dict[str, Callable[[Garment, Garment], list[Clause]]] = {
        "colour": _colour_clauses, "pattern": _pattern_clauses, "sleeves": _sleeve_clauses,
        "length": _length_clauses, "neckline": _neckline_clauses}
    return builders[aspect[0]](reference, target)


#: Phrases that name a change without its new value: of hue ("colour"), of shade alone ("shade"), and of the
#: other aspects. Pattern has its own for a solid reference ("has a pattern"), so these are for a patterned one.
_VAGUE_PHRASES: Mapping[str, tuple[tuple[str, str, str | None], ...]] = MappingProxyType({
    "colour": (("is", "a different color", None), ("has", "a different color", "a different color"),
               ("is", "another color", None)),
    "shade": (("is", "a different shade", None), ("has", "a different tone", "a different tone")),
    "pattern": (("has", "a different pattern", "a different pattern"),
                ("has", "a different print", "a different print")),
    "sleeves": (("has", "different sleeves", "different sleeves"),
                ("has", "a different sleeve length", "a different sleeve length")),
    "length": (("is", "a different length", None), ("has", "a different length", "a different length")),
    "neckline": (("has", "a different neckline", "a different neckline"),
                 ("has", "another neckline", "another neckline")),
})


def vague_clauses(aspect: tuple[str, ...], reference: Garment, target: Garment) -> list[Clause]:
    """Phrases for a change of ``aspect`` that pin none of its attributes: the aspect's own that cover
    nothing ("is darker" from light, "has a lower neckline") and generic ones ("is a different color")."""
    own = [clause for clause in _aspect_clauses(aspect, reference, target) if not clause.covers]
    key = aspect[0]
    if key == "colour" and reference.colour == target.colour:
        key = "shade"
    if key == "pattern" and reference.pattern == "solid":
        return own
    texts = {clause.text for clause in own}
    return own + [Clause(verb, text, with_text=with_text) for verb, text, with_text in _VAGUE_PHRASES[key]
                  if text not in texts]


def _ordinal_covers(values: tuple[str, ...], old: str, new: str, much: bool) -> bool:
    """Whether "more" (or "much more" when ``much``) in the direction old → new leaves one value possible."""
    i, j = values.index(old), values.index(new)
    step = 1 if j > i else -1
    candidates = [k for k in range(len(values)) if (k - i) * step >= (2 if much else 1)]
    return len(candidates) == 1


def _colour_clauses(reference: Garment, target: Garment) -> list[Clause]:
    changed = frozenset(a for a in ("colour", "shade") if getattr(reference, a) != getattr(target, a))
    noun = NOUNS[target.category]
    new, hue = colour_phrase(target.colour, target.shade), target.colour
    clauses: list[Clause] = []
    if "colour" in changed:
        old = colour_phrase(reference.colour, reference.shade)
        clauses += [Clause("is", new, changed), Clause("is", f"{new} in color", changed),
                    Clause("is", f"{new} colored", changed), Clause("is", f"a {new} {noun}", changed),
                    Clause("has", f"a {new} color", changed), Clause("make", f"it {new}", changed),
                    Clause("is", f"{new} instead of {old}", changed, weight=0.3),
                    Clause("is", f"all {new}", changed, weight=0.3)]
        if "shade" in changed and target.shade != "medium":
            clauses.append(Clause("is", hue, frozenset({"colour"})))
    if "shade" in changed:
        darker = SHADES.index(target.shade) > SHADES.index(reference.shade)
        much = abs(SHADES.index(target.shade) - SHADES.index(reference.shade)) > 1
        word = "darker" if darker else "lighter"
        pinned = frozenset({"shade"}) if _ordinal_covers(SHADES, reference.shade, target.shade, False) else frozenset()
        relative = [Clause("is", word, pinned), Clause("is", f"{word} in color", pinned),
                    Clause("is", f"a {word} color", pinned), Clause("is", f"a {word} shade", pinned)]
        if "colour" not in changed:
            relative.append(Clause("is", f"a {word} {hue}", pinned))
            relative.append(Clause("is", "deeper in color" if darker else "paler", pinned, weight=0.5))
            if target.shade != "medium":
                clauses.append(Clause("is", new, frozenset({"shade"})))
        if much:
            relative.append(Clause("is", f"much {word}", frozenset({"shade"})))
        clauses += relative
    return clauses


_PATTERN_PHRASES: Mapping[str, tuple[tuple[str, str, str | None], ...]] = MappingProxyType({
    "solid": (("is", "solid", None), ("is", "solid colored", None), ("is", "plain", None),
              ("has", "no pattern", "no pattern"), ("is", "a solid color", None)),
    "striped": (("is", "striped", None), ("has", "stripes", "stripes"),
                ("has", "horizontal stripes", "horizontal stripes"), ("is", "in stripes", None),
                ("has", "a striped pattern", "a striped pattern")),
    "polka dot": (("has", "polka dots", "polka dots"), ("is", "polka dotted", None), ("has", "dots", "dots"),
                  ("is", "dotted", None), ("has", "a dotted print", "a dotted print")),
    "checked": (("is", "plaid", None), ("is", "checkered", None), ("has", "a checked pattern", "a checked pattern"),
                ("is", "gingham", None), ("has", "checks", "checks")),
    "floral": (("is", "floral", None), ("has", "a floral print", "a floral print"), ("has", "flowers on it", "flowers"),
               ("has", "a flower pattern", "a flower pattern"), ("is", "flowery", None)),
})


def _pattern_clauses(reference: Garment, target: Garment) -> list[Clause]:
    pinned = frozenset({"pattern"})
    clauses = [Clause(verb, text, pinned, with_text) for verb, text, with_text in _PATTERN_PHRASES[target.pattern]]
    if reference.pattern == "solid":
        clauses += [Clause("is", "more patterned", weight=0.5), Clause("has", "a pattern", with_text="a pattern",
                                                                      weight=0.5), Clause("is", "busier", weight=0.3)]
    elif target.pattern != "solid":
        clauses += [Clause("has", "a different pattern", with_text="a different pattern", weight=0.5),
                    Clause("has", "a different print", with_text="a different print", weight=0.3)]
    return clauses


_SLEEVE_PHRASES: Mapping[str, tuple[tuple[str, str, str | None], ...]] = MappingProxyType({
    "sleeveless": (("is", "sleeveless", None), ("has", "no sleeves", "no sleeves")),
    "short sleeves": (("has", "short sleeves", "short sleeves"), ("is", "short sleeved", None)),
    "three-quarter sleeves": (("has", "three quarter sleeves", "three quarter sleeves"),
                              ("has", "3/4 sleeves", "3/4 sleeves"),
                              ("has", "elbow length sleeves", "elbow length sleeves")),
    "long sleeves": (("has", "long sleeves", "long sleeves"), ("is", "long sleeved", None),
                     ("has", "full sleeves", "full sleeves")),
})


def _sleeve_clauses(reference: Garment, target: Garment) -> list[Clause]:
    pinned = frozenset({"sleeves"})
    values = attribute_values(target.category, "sleeves")
    clauses = [Clause(verb, text, pinned, with_text) for verb, text, with_text in _SLEEVE_PHRASES[target.sleeves]]
    if target.sleeves == "sleeveless":
        return clauses
    longer = values.index(target.sleeves) > values.index(reference.sleeves)
    word = "longer" if longer else "shorter"
    relative = pinned if _ordinal_covers(values, reference.sleeves, target.sleeves, False) else frozenset()
    clauses.append(Clause("has", f"{word} sleeves", relative, f"{word} sleeves"))
    if abs(values.index(target.sleeves) - values.index(reference.sleeves)) > 1:
        clauses.append(Clause("has", f"much {word} sleeves", pinned, f"much {word} sleeves"))
    if reference.sleeves == "sleeveless":
        clauses.append(Clause("has", "sleeves", with_text="sleeves", weight=0.5))
    return clauses


_LENGTH_PHRASES: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    "mini length": (("is", "a mini dress"), ("is", "above the knee"), ("is", "a short dress"), ("is", "very short"),
                    ("make", "it a mini dress")),
    "knee length": (("is", "knee length"), ("is", "a knee length dress"), ("is", "knee-length"),
                    ("make", "it knee length")),
    "maxi length": (("is", "a maxi dress"), ("is", "floor length"), ("is", "a long dress"), ("is", "maxi length"),
                    ("make", "it a maxi dress")),
    "cropped": (("is", "cropped"), ("is", "a cropped {noun}"), ("is", "a crop top"), ("make", "it cropped")),
    "hip length": (("is", "hip length"), ("is", "regular length"), ("is", "a regular length {noun}")),
    "tunic length": (("is", "tunic length"), ("is", "a long tunic"), ("is", "tunic style"), ("make", "it a tunic")),
})


def _length_clauses(reference: Garment, target: Garment) -> list[Clause]:
    pinned = frozenset({"length"})
    noun = NOUNS[target.category]
    values = attribute_values(target.category, "length")
    clauses = [Clause(verb, text.format(noun=noun), pinned) for verb, text in _LENGTH_PHRASES[target.length]
               if not (text == "a crop top" and target.category != "toptee")]
    longer = values.index(target.length) > values.index(reference.length)
    word = "longer" if longer else "shorter"
    relative = pinned if _ordinal_covers(values, reference.length, target.length, False) else frozenset()
    clauses += [Clause("is", word, relative), Clause("is", f"a {word} length", relative),
                Clause("is", f"a {word} {noun}", relative), Clause("is", f"{word} in length", relative)]
    if abs(values.index(target.length) - values.index(reference.length)) > 1:
        clauses.append(Clause("is", f"much {word}", pinned))
    return clauses


_NECKLINE_PHRASES: Mapping[str, tuple[tuple[str, str, str | None], ...]] = MappingProxyType({
    "crew neck": (("has", "a crew neck", "a crew neck"), ("has", "a round neckline", "a round neckline"),
                  ("has", "a round neck", "a round neck")),
    "v-neck": (("has", "a v-neck", "a v-neck"), ("has", "a v neckline", "a v neckline"), ("is", "v-necked", None)),
    "scoop neck": (("has", "a scoop neck", "a scoop neck"), ("has", "a scoop neckline", "a scoop neckline"),
                   ("has", "a wide round neckline", "a wide round neckline")),
    "square neck": (("has", "a square neck", "a square neck"), ("has", "a square neckline", "a square neckline")),
    "collar": (("has", "a collar", "a collar"), ("is", "collared", None), ("has", "a pointed collar", "a collar")),
})
#: How deep each neckline reaches, for "lower" / "higher neckline" (collar and crew sit highest).
_NECK_DEPTH_ORDER: Mapping[str, int] = MappingProxyType({
    "collar": 0, "crew neck": 0, "square neck": 1, "scoop neck": 2, "v-neck": 3})


def _neckline_clauses(reference: Garment, target: Garment) -> list[Clause]:
    pinned = frozenset({"neckline"})
    clauses = [Clause(verb, text, pinned, with_text) for verb, text, with_text in _NECKLINE_PHRASES[target.neckline]]
    clauses.append(Clause("has", "a different neckline", with_text="a different neckline", weight=0.3))
    old, new = _NECK_DEPTH_ORDER[reference.neckline], _NECK_DEPTH_ORDER[target.neckline]
    if old != new:
        word = "lower" if new > old else "higher"
        clauses.append(Clause("has", f"a {word} neckline", with_text=f"a {word} neckline", weight=0.5))
    return clauses


# ------------------------------------------------------------------------------------------ context
def _context_clause(reference: Garment, target: Garment, changed: tuple[str, ...],
                    rng: random.Random) -> Clause | None:
    """A true remark about an attribute the change keeps ("is still striped", "still has long sleeves")."""
    kept = [a for a in ATTRIBUTES if a not in changed and a != "shade" and not (a == "colour" and "shade" in changed)]
    if not kept:
        return None
    attribute = rng.choice(kept)
    if attribute == "colour":
        return Clause("is", f"still {colour_phrase(target.colour, target.shade)}")
    tables = {"pattern": _PATTERN_PHRASES, "sleeves": _SLEEVE_PHRASES, "neckline": _NECKLINE_PHRASES}
    if attribute in tables:
        verb, text, _ = rng.choice(tables[attribute][getattr(target, attribute)])
    else:
        verb, text = rng.choice([p for p in _LENGTH_PHRASES[target.length] if p[0] != "make"])
        text = text.format(noun=NOUNS[target.category])
    return Clause("is", f"still {text}") if verb == "is" else Clause("still has", text)


# ------------------------------------------------------------------------------------------ surface
def _sentence(clauses: list[Clause], noun: str, rng: random.Random) -> str:
    """Join clauses into one caption and give it an annotator's surface (lead-in, verb drop, ending)."""
    first = clauses[0]
    text = f"{first.verb} {first.text}" if first.verb != "make" else f"make {first.text}"
    previous = first.verb
    for position, clause in enumerate(clauses[1:], start=2):
        last = position == len(clauses)
        if clause.verb == "has" and previous == "is" and clause.with_text and rng.random() < 0.5:
            text += f" with {clause.with_text}"
        else:
            joiner = " and " if last else ", "
            verb_dropped = clause.verb == previous and rng.random() < 0.6
            text += joiner + (clause.text if verb_dropped else f"{clause.verb} {clause.text}")
        previous = clause.verb
    lead = rng.random()
    if first.verb in ("is", "has"):
        if lead < 0.05:
            text = f"it {text}"
        elif lead < 0.08:
            text = f"the {noun} {text}"
        elif lead < 0.14:
            text = text.split(" ", 1)[1]  # "darker and longer", "short sleeves and a v-neck"
    ending = rng.choices(["", ".", " ", ". ", "  "], weights=[70, 16, 8, 4, 2])[0]
    return (text + ending).lower()
