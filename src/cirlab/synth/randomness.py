"""Independent, named random streams derived from the data set's seed.

Each stage of the generator (ids, garments, nuisance, triplets, captions) draws from its own
stream, keyed by the seed, a stage name and any further keys (a category, a split). A change in how
one stage uses randomness therefore leaves every other stage's output unchanged, and the output
does not depend on the order in which stages run.
"""

from __future__ import annotations

import hashlib
import random


def stream(seed: int, stage: str, *keys: object) -> random.Random:
    """A :class:`random.Random` seeded from ``seed``, ``stage`` and ``keys`` (stable across runs and platforms)."""
    text = "/".join([str(seed), stage, *map(str, keys)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def weighted_sample(rng: random.Random, items: list[str], weights: list[float], k: int) -> list[str]:
    """``k`` distinct items drawn without replacement, each draw proportional to the remaining weights."""
    pool, pool_weights, chosen = list(items), list(weights), []
    for _ in range(min(k, len(pool))):
        index = rng.choices(range(len(pool)), weights=pool_weights)[0]
        chosen.append(pool.pop(index))
        pool_weights.pop(index)
    return chosen
