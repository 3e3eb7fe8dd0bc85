"""``category``: a mixture of same-category, other-category and anywhere negatives (default 70/20/10).

Same-category negatives are the informative ones in FashionIQ (a dress is best told apart from other
dresses), but a few cross-category and unrestricted negatives keep the embedding organised across
categories when several are trained together.

Each slot picks its source independently with the configured probabilities, then draws uniformly
from that source (excluding the target and its duplicates, with replacement). A source with no
admissible item (a category holding only the target and its duplicates, or "other category" in a
one-category gallery) is widened to the whole gallery; ``category_fallback`` counts those slots.
``from_same_category`` / ``from_other_category`` / ``from_anywhere`` count where negatives came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler
from cirlab.negatives.draw import ANY, OTHER, SAME, GuardedDraw
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD
from cirlab.negatives.scan import uniform

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.2, 0.1)


@SAMPLERS.register("category")
class CategorySampler(GallerySampler):
    """Mixture of same-category / other-category / anywhere uniform negatives.

    Args:
        ratios: probabilities of the three sources (same, other, anywhere); non-negative, summing to 1.
        max_redraws: redraws of a slot that hit a duplicate before the exact scan settles it.
    """

    logged_stats = (*COMMON_STATS, "from_same_category", "from_other_category", "from_anywhere", "category_fallback")

    def __init__(self, gallery: Gallery, ratios: Sequence[float] = DEFAULT_RATIOS,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, max_redraws: int = 8, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        ratios = tuple(float(r) for r in ratios)
        if len(ratios) != 3 or min(ratios) < 0 or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
            raise ConfigError(f"category sampler: ratios must be three non-negative numbers (same, other, "
                              f"anywhere) summing to 1, got {list(ratios)}")
        self.ratios = ratios
        self.draws = GuardedDraw(gallery, self.guard, self.chunk_size, max_redraws=max_redraws)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        u = uniform((positives.shape[0], k), generator, positives.device)
        same, other = self.ratios[0], self.ratios[0] + self.ratios[1]
        sources = torch.where(u < same, SAME, torch.where(u < other, OTHER, ANY))
        result, exact, near = self.draws.draw(positives, batch.categories, sources, generator)
        self.add_guard_counts(exact, near)
        self.count("fallback_negatives", result.fallback.sum())
        self.count("category_fallback", result.widened.sum())
        for name, source in (("from_same_category", SAME), ("from_other_category", OTHER), ("from_anywhere", ANY)):
            self.count(name, (result.sources == source).sum())
        return result.negatives

    def options(self) -> dict[str, object]:
        return {"ratios": list(self.ratios), "max_redraws": self.draws.max_redraws}
