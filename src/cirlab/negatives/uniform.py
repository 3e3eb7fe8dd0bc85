"""``random``: negatives drawn uniformly from the whole gallery (the baseline every strategy is compared to)."""

from __future__ import annotations

import torch
from torch import Tensor

from cirlab.negatives.base import SAMPLERS, GallerySampler
from cirlab.negatives.draw import ANY, GuardedDraw
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD


@SAMPLERS.register("random")
class RandomSampler(GallerySampler):
    """Each negative is an independent uniform draw from the gallery minus the target and its duplicates.

    Draws are with replacement (a query may get the same negative twice, as independent draws do).
    A draw that hits a duplicate of the target is redrawn; ``fallback_negatives`` counts the rare
    slots settled by an exact scan after ``max_redraws`` misses.
    """

    def __init__(self, gallery: Gallery, near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, max_redraws: int = 8, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        self.draws = GuardedDraw(gallery, self.guard, self.chunk_size, max_redraws=max_redraws)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        sources = torch.full((positives.shape[0], k), ANY, dtype=torch.long, device=positives.device)
        result, exact, near = self.draws.draw(positives, batch.categories, sources, generator)
        self.add_guard_counts(exact, near)
        self.count("fallback_negatives", result.fallback.sum())
        return result.negatives

    def options(self) -> dict[str, int]:
        return {"max_redraws": self.draws.max_redraws}
