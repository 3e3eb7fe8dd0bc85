"""The catalogue: which garments exist, their ids, splits, nuisance and exact duplicates.

Garments come in *families*: a prototype plus variants that differ from it in one or two
attributes (at a raised ambiguity level some families are *colourways*: every variant is the
prototype in another hue, as a catalogue sells one garment in several colours). Families make the
retrieval problem realistic: most random negatives differ from a target in almost every attribute
(easy), while its family members differ in one or two (hard).
Attribute combinations are unique within a category, so a target is defined by its attributes;
the exceptions are the exact duplicates, copies of an image under a second id (byte-identical
files), as FashionIQ has them, and, at a raised ambiguity level, *twins*: a garment drawn a second
time with its own nuisance (same attributes, another picture). A copy stays in its original's split,
a twin in its garment's family.

Whole families are assigned to splits (greedily, towards the configured fractions), so each split
holds complete families to draw triplets and hard negatives from, and no val or test garment is a
one-attribute variant of a train garment by construction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import MappingProxyType

from cirlab.data.layout import SPLITS
from cirlab.synth.config import SynthConfig
from cirlab.synth.ids import IdAllocator
from cirlab.synth.nuisance import Nuisance, sample_nuisance
from cirlab.synth.randomness import stream, weighted_sample
from cirlab.synth.vocabulary import ATTRIBUTES, Garment, attribute_values

#: How often each attribute is the one that varies within a family (colour varies most, as in
#: FashionIQ's captions, where colour is the most frequent change).
MUTATION_WEIGHTS: MappingProxyType[str, float] = MappingProxyType({
    "colour": 3.0, "shade": 2.0, "pattern": 2.0, "sleeves": 2.0, "length": 2.0, "neckline": 1.5})
#: Probability that a family member differs from its prototype in one (else two) attributes.
ONE_CHANGE_PROBABILITY = 0.6
_ATTEMPTS_PER_MEMBER = 30
#: A category has at least about this many families (family sizes shrink for small data sets).
MIN_FAMILIES = 8


@dataclass(frozen=True)
class Item:
    """One image of the data set."""

    image_id: str
    garment: Garment
    split: str
    family: int  # index of the family within its category
    nuisance: Nuisance
    duplicate_of: str | None = None  # the id whose image file this one copies byte for byte

    @property
    def category(self) -> str:
        """The garment's category."""
        return self.garment.category


def build_catalogue(config: SynthConfig) -> list[Item]:
    """Every item of the data set, category by category (deterministic in ``config``)."""
    ids = IdAllocator(stream(config.seed, "ids"))
    items: list[Item] = []
    for category in config.categories:
        items.extend(_category_items(config, category, ids))
    return items


def duplicate_count(config: SynthConfig) -> int:
    """Exact-duplicate copies per category (at least one whenever duplicates are asked for)."""
    if config.duplicate_fraction <= 0:
        return 0
    return max(1, round(config.images_per_category * config.duplicate_fraction))


def twin_count(config: SynthConfig) -> int:
    """Twins per category: distinct garments drawn a second time (none at the default ambiguity)."""
    fraction = config.ambiguity_level.twin_fraction
    if fraction <= 0:
        return 0
    distinct = (config.images_per_category - duplicate_count(config)) / (1 + fraction)
    return round(distinct * fraction)


def _category_items(config: SynthConfig, category: str, ids: IdAllocator) -> list[Item]:
    copies, twins = duplicate_count(config), twin_count(config)
    unique = config.images_per_category - copies - twins
    low, high = config.family_size
    # Small data sets get small families, so that whole families can still be split about 60/20/20.
    size_range = (low, max(low, min(high, unique // MIN_FAMILIES)))
    fraction = config.ambiguity_level.colourway_fraction
    colourways = (fraction, stream(config.seed, "colourways", category)) if fraction else None
    families = sample_families(category, unique, size_range, stream(config.seed, "families", category), colourways)
    if twins:
        families = add_twins(families, twins, stream(config.seed, "twins", category))
    splits = assign_splits([len(f) for f in families], config.split_fractions, stream(config.seed, "splits", category))
    nuisance_rng = stream(config.seed, "nuisance", category)
    items = [Item(ids.next(), garment, splits[f], f, sample_nuisance(nuisance_rng))
             for f, family in enumerate(families) for garment in family]
    sources = stream(config.seed, "duplicates", category).sample(items, copies)
    items.extend(Item(ids.next(), s.garment, s.split, s.family, s.nuisance, duplicate_of=s.image_id) for s in sources)
    return items


def random_garment(category: str, rng: random.Random) -> Garment:
    """A garment with every attribute drawn uniformly."""
    return Garment(category, *(rng.choice(attribute_values(category, a)) for a in ATTRIBUTES))


def mutate(garment: Garment, rng: random.Random) -> Garment:
    """A variant of ``garment`` with one or two attributes changed to other values."""
    count = 1 if rng.random() < ONE_CHANGE_PROBABILITY else 2
    names = list(MUTATION_WEIGHTS)
    changed = garment
    for attribute in weighted_sample(rng, names, [MUTATION_WEIGHTS[a] for a in names], count):
        current = getattr(garment, attribute)
        changed = changed.replace(attribute, rng.choice([v for v in attribute_values(garment.category, attribute)
                                                         if v != current]))
    return changed


def recolour(garment: Garment, rng: random.Random) -> Garment:
    """``garment`` in another hue (same shade and every other attribute)."""
    return garment.replace("colour", rng.choice([v for v in attribute_values(garment.category, "colour")
                                                 if v != garment.colour]))


def sample_families(category: str, count: int, size_range: tuple[int, int], rng: random.Random,
                    colourways: tuple[float, random.Random] | None = None) -> list[list[Garment]]:
    """``count`` garments with distinct attributes, grouped into families of near-identical garments.

    With ``colourways`` = (fraction, generator), that generator decides for each family, with
    probability ``fraction``, that it is a colourway (its variants are :func:`recolour` s of the prototype).
    """
    used: set[Garment] = set()
    families: list[list[Garment]] = []
    remaining = count
    while remaining > 0:
        size = rng.randint(*size_range)
        if remaining - size < size_range[0]:  # never leave a remainder too small to form a family
            size = remaining if remaining <= size_range[1] else remaining - size_range[0]
        prototype = random_garment(category, rng)
        while prototype in used:
            prototype = random_garment(category, rng)
        family = [prototype]
        used.add(prototype)
        vary = recolour if colourways is not None and colourways[1].random() < colourways[0] else mutate
        for _ in range(size * _ATTEMPTS_PER_MEMBER):
            if len(family) == size:
                break
            variant = vary(prototype, rng)
            if variant not in used:
                family.append(variant)
                used.add(variant)
        families.append(family)
        remaining -= len(family)
    return families


def add_twins(families: list[list[Garment]], count: int, rng: random.Random) -> list[list[Garment]]:
    """``families`` with ``count`` of their garments (drawn without replacement) repeated right after themselves."""
    positions = [(f, m) for f, family in enumerate(families) for m in range(len(family))]
    chosen = set(rng.sample(positions, min(count, len(positions))))
    return [[garment for m, garment in enumerate(family) for _ in range(2 if (f, m) in chosen else 1)]
            for f, family in enumerate(families)]


def assign_splits(sizes: list[int], fractions: tuple[float, float, float], rng: random.Random) -> list[str]:
    """A split per family: families in random order, each to the split furthest below its share.

    The first three families visited go to val, test and train, so that no split is empty.
    """
    order = list(range(len(sizes)))
    rng.shuffle(order)
    counts = dict.fromkeys(SPLITS, 0)
    assigned: list[str] = [""] * len(sizes)
    total = 0
    for position, family in enumerate(order):
        if position < len(SPLITS):
            split = ("val", "test", "train")[position]
        else:
            deficits = {s: fractions[i] * (total + sizes[family]) - counts[s] for i, s in enumerate(SPLITS)}
            split = max(SPLITS, key=lambda s: deficits[s])
        assigned[family] = split
        counts[split] += sizes[family]
        total += sizes[family]
    return assigned
