"""Choosing triplets: a reference and a target of the same category and split that differ in 1–3 attributes.

For each reference image the generator draws a wanted number of differences (1, 2 or 3, with
:data:`DIFFERENCE_WEIGHTS`) and a target uniformly among the split's images that differ by exactly
that many attributes (any of 1–3 when none does). Exact duplicates of the reference differ in no
attribute and are never its target. Nuisance is independent of attributes, so the target is never
a re-photographed reference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from cirlab.synth.catalogue import Item

#: Probability of wanting a target that differs in 1, 2 or 3 attributes.
DIFFERENCE_WEIGHTS: tuple[tuple[int, float], ...] = ((1, 0.35), (2, 0.40), (3, 0.25))
MIN_DIFFERENCES, MAX_DIFFERENCES = 1, 3
_BLOCK = 512  # reference rows compared at once (bounds the memory of the difference matrix)


@dataclass(frozen=True)
class Pair:
    """A reference and its target, and the attributes in which they differ."""

    reference: Item
    target: Item
    changed: tuple[str, ...]


def sample_pairs(items: list[Item], per_reference: float, rng: random.Random) -> list[Pair]:
    """Triplet pairs among ``items`` (one category and split), about ``per_reference`` per image, shuffled.

    Every image is a reference ``int(per_reference)`` times, plus once more with probability equal
    to the fractional part; its targets are distinct.
    """
    if len(items) < 2:
        return []
    items = sorted(items, key=lambda item: item.image_id)
    codes = np.array([item.garment.codes() for item in items], dtype=np.int16)
    whole, fraction = int(per_reference), per_reference - int(per_reference)
    wanted_counts, weights = zip(*DIFFERENCE_WEIGHTS)
    pairs: list[Pair] = []
    for start in range(0, len(items), _BLOCK):
        differences = (codes[start:start + _BLOCK, None, :] != codes[None, :, :]).sum(axis=2)
        for row, counts in enumerate(differences):
            reference = items[start + row]
            usable = (counts >= MIN_DIFFERENCES) & (counts <= MAX_DIFFERENCES)
            taken: set[int] = set()
            for _ in range(whole + (1 if rng.random() < fraction else 0)):
                wanted = rng.choices(wanted_counts, weights=weights)[0]
                candidates = [i for i in np.flatnonzero(counts == wanted).tolist() if i not in taken]
                if not candidates:
                    candidates = [i for i in np.flatnonzero(usable).tolist() if i not in taken]
                if not candidates:
                    break
                index = candidates[rng.randrange(len(candidates))]
                taken.add(index)
                target = items[index]
                pairs.append(Pair(reference, target, tuple(reference.garment.differences(target.garment))))
    rng.shuffle(pairs)
    return pairs
