"""What the synthetic benchmark generator makes: :class:`SynthConfig` and its named presets.

Everything the generator writes is a pure function of the configuration (and
:data:`GENERATOR_VERSION`), so a configuration identifies a data set: the same configuration gives
byte-identical files, and a folder written with one configuration is never overwritten with another.

The configuration's ``ambiguity`` names an :class:`AmbiguityLevel` (:data:`AMBIGUITY_LEVELS`): how
often another gallery image satisfies a query as well as its target does. ``default`` is the
benchmark as it has always been written; higher levels add attribute twins, vague captions and
colourway families.

The configuration's ``format`` names the layout written (:data:`FORMATS`): ``fashioniq`` (the
default, :mod:`cirlab.synth.generate`) or ``cirr`` (the same benchmark in CIRR's layout,
:mod:`cirlab.synth.cirr`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cirlab.data.layout import CATEGORIES
from cirlab.errors import ConfigError
from cirlab.synth.vocabulary import combinations

#: Bumped whenever a change to the generator changes its output for an unchanged configuration.
GENERATOR_VERSION = 1

#: Fewest images per category that still give every split a few families to draw triplets from.
MIN_IMAGES_PER_CATEGORY = 20
MIN_SIZE, MAX_SIZE = 32, 1024
#: Attribute combinations are unique within a category (bar the exact duplicates); at most this
#: fraction of the combinations is used so that families of similar garments can still be found.
MAX_COMBINATION_FRACTION = 0.5


@dataclass(frozen=True)
class AmbiguityLevel:
    """The mechanisms that let other gallery images satisfy a query, and how strongly each acts.

    Each makes a query genuinely satisfiable by more than its target, as FashionIQ's queries are:

    * ``twin_fraction``: the share of a category's distinct garments drawn a second time as a *twin*,
      the same attributes in another picture (own position, scale, rotation, background, pattern
      phase), as a catalogue lists the same garment twice; a query whose target has a twin is
      satisfied by the twin as well. Twins stay in their garment's family and split.
    * ``vague_fraction``: the share of triplets whose captions mention one of the changed aspects
      only vaguely ("is a different color", "has a different pattern", "is darker" from light),
      without its new value, as annotators often mention only part of a change; every image that
      differs from the reference there (and matches the target elsewhere) satisfies the query.
    * ``colourway_fraction``: the share of families that are *colourways*, the same garment in several
      hues (instead of variants in one or two random attributes), as a catalogue sells a garment in
      each of its colours; a query whose captions leave the hue open ("is a different color") is then
      satisfied by the other colours of the target's family, which look nothing like duplicates.
    """

    twin_fraction: float = 0.0
    vague_fraction: float = 0.0
    colourway_fraction: float = 0.0


#: Named ambiguity levels. ``default`` writes exactly the benchmark of earlier versions.
AMBIGUITY_LEVELS: MappingProxyType[str, AmbiguityLevel] = MappingProxyType({
    "default": AmbiguityLevel(),
    "medium": AmbiguityLevel(twin_fraction=0.1, vague_fraction=0.35, colourway_fraction=0.3),
    "high": AmbiguityLevel(twin_fraction=0.25, vague_fraction=0.7, colourway_fraction=0.6),
})
DEFAULT_AMBIGUITY = "default"

#: The layouts the generator writes: FashionIQ's (the default) and CIRR's.
FORMATS: tuple[str, ...] = ("fashioniq", "cirr")
DEFAULT_FORMAT = "fashioniq"


@dataclass(frozen=True)
class SynthConfig:
    """Size and randomness of one synthetic data set.

    Preset values come from :meth:`preset`; any field can be overridden with :meth:`with_overrides`.
    """

    seed: int = 0
    images_per_category: int = 1200  # including the duplicate copies
    size: int = 96  # side of the square images, in pixels
    categories: tuple[str, ...] = CATEGORIES
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / val / test share of the images
    train_triplets_per_image: float = 2.0  # triplets per train reference image (fractions drawn at random)
    eval_triplets_per_image: float = 1.0  # triplets per val or test reference image
    duplicate_fraction: float = 0.01  # share of a category's images that are byte-identical copies of another
    family_size: tuple[int, int] = (3, 9)  # members of a family of near-identical garments (inclusive range)
    supersample: int = 2  # garments are drawn at this multiple of ``size`` and box-filtered down (anti-aliasing)
    ambiguity: str = DEFAULT_AMBIGUITY  # a name of AMBIGUITY_LEVELS
    format: str = DEFAULT_FORMAT  # the layout written, a name of FORMATS

    @classmethod
    def preset(cls, name: str) -> SynthConfig:
        """The configuration called ``name``: ``default`` (the demo benchmark) or ``tiny`` (tests)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown synthetic preset {name!r}; use one of {sorted(PRESETS)}")
        return cls(**PRESETS[name]).validated()

    def with_overrides(self, **changes: Any) -> SynthConfig:
        """A copy with the fields in ``changes`` replaced (``None`` values are ignored), validated."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}).validated()

    def validated(self) -> SynthConfig:
        """Return ``self`` after checking every field, or raise :class:`ConfigError` naming the bad one."""
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"synthetic seed must be a non-negative integer, got {self.seed!r}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ConfigError(f"image size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {self.size}")
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown or not self.categories or len(set(self.categories)) != len(self.categories):
            raise ConfigError(f"categories must be distinct names from {list(CATEGORIES)}, got {list(self.categories)}")
        largest = min(int(combinations(c) * MAX_COMBINATION_FRACTION) for c in self.categories)
        if not MIN_IMAGES_PER_CATEGORY <= self.images_per_category <= largest:
            raise ConfigError(f"images per category must be between {MIN_IMAGES_PER_CATEGORY} and {largest}, "
                              f"got {self.images_per_category}")
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ConfigError(f"split fractions must be three positive numbers summing to 1, got {fractions}")
        if not (0 < self.train_triplets_per_image <= 10 and 0 < self.eval_triplets_per_image <= 10):
            raise ConfigError("triplets per image must be in (0, 10]")
        if not 0 <= self.duplicate_fraction <= 0.2:
            raise ConfigError(f"duplicate fraction must be in [0, 0.2], got {self.duplicate_fraction}")
        low, high = self.family_size
        if not 2 <= low <= high <= 50:
            raise ConfigError(f"family size must be a range within [2, 50], got {self.family_size}")
        if self.supersample not in (1, 2, 3, 4):
            raise ConfigError(f"supersample must be 1, 2, 3 or 4, got {self.supersample}")
        if self.ambiguity not in AMBIGUITY_LEVELS:
            raise ConfigError(f"unknown ambiguity level {self.ambiguity!r}; use one of {list(AMBIGUITY_LEVELS)}")
        if self.format not in FORMATS:
            raise ConfigError(f"unknown synthetic format {self.format!r}; use one of {list(FORMATS)}")
        return self

    @property
    def ambiguity_level(self) -> AmbiguityLevel:
        """The mechanisms and strengths that :attr:`ambiguity` names."""
        return AMBIGUITY_LEVELS[self.ambiguity]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists), as recorded in ``synth_meta.json``.

        ``ambiguity`` and ``format`` are left out at their defaults, so that a default configuration is
        recorded (and recognised on a rerun) exactly as before the settings existed.
        """
        data = json_ready(dataclasses.asdict(self))
        if data["ambiguity"] == DEFAULT_AMBIGUITY:
            del data["ambiguity"]
        if data["format"] == DEFAULT_FORMAT:
            del data["format"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthConfig:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
        return cls(**values)


def json_ready(value: Any) -> Any:
    """Tuples → lists, recursively, so that a value compares equal to its JSON round trip."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


#: Named presets. ``default`` makes the demo meaningful in minutes on two CPU cores; ``tiny`` is
#: for tests (about a second to generate).
PRESETS: MappingProxyType[str, MappingProxyType[str, Any]] = MappingProxyType({
    "default": MappingProxyType({"images_per_category": 1200, "size": 96}),
    "tiny": MappingProxyType({"images_per_category": 40, "size": 48}),
})
