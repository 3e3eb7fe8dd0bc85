"""``rank-window``: uniform negatives from a band of ranks, skipping the very closest items.

The closest items of a query are its most likely false negatives, and its farthest teach nothing. Both
sentence-transformers (``mine_hard_negatives(range_min=…, range_max=…, sampling_strategy="random")``) and
RAGatouille's ``SimpleMiner`` ("retrieve random negatives in the top 10-100 results") therefore draw
negatives uniformly from a band of the ranking: ranks ``[range_min, range_max)``, counted from 0 = the most
similar admissible item (as sentence-transformers counts them, after the positives are removed; here the
target and its guarded duplicates). The defaults are RAGatouille's: ``range_min = 10`` ("skip the top 10")
and ``range_max = 110`` (its ``max_rank``, which it caps at a tenth of a small collection; here the band is
simply cut by the gallery's size). sentence-transformers' own defaults (``range_min = 0``, ``range_max``
derived from the number of negatives) would make this sampler ``hard``'s ``top_m``.

The ``k`` negatives are a uniform sample without replacement of the band, returned in rank order. One chunked
pass keeps each query's ``range_max + k + GUARD_SLACK + 1`` most similar items; the guard then removes the
target's duplicates (a query with more duplicates than the slack among them is scanned again with the guard
on every item), which leaves the admissible ranking up to rank ``range_max + k``.

When the band holds fewer than ``k`` admissible items (a small gallery, or a band narrower than ``k``), every
band item is taken, then the items ranked just after the band (``range_max``, ``range_max + 1``, …), then
those just before it (``range_min - 1``, ``range_min - 2``, …), counted in ``fallback_negatives``; picks
repeat only when the gallery holds fewer than ``k`` admissible items. ``guard_exact_duplicates`` /
``guard_near_duplicates`` count the duplicates inside the band of the unguarded ranking (the target removed).
"""

from __future__ import annotations

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import SAMPLERS, GallerySampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD, no_negative_error
from cirlab.negatives.scan import GUARD_SLACK, compact, fill_cyclic, uniform

#: RAGatouille's SimpleMiner: skip the top 10, draw from the ranks before 110.
DEFAULT_RANGE_MIN, DEFAULT_RANGE_MAX = 10, 110


@SAMPLERS.register("rank-window")
class RankWindowSampler(GallerySampler):
    """Uniform negatives from ranks [range_min, range_max) of the gallery by similarity (RAGatouille: 10 to 110).

    Args:
        range_min: first rank of the band (0 = the most similar admissible item).
        range_max: one past the band's last rank.
    """

    def __init__(self, gallery: Gallery, range_min: int = DEFAULT_RANGE_MIN, range_max: int = DEFAULT_RANGE_MAX,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        if int(range_min) < 0 or int(range_max) <= int(range_min):
            raise ConfigError(f"rank-window sampler: need 0 <= range_min < range_max, got range_min={range_min} "
                              f"and range_max={range_max}")
        self.range_min, self.range_max = int(range_min), int(range_max)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        size, rows = len(self.gallery), positives.shape[0]
        depth = min(self.range_max + k, size)  # admissible ranks the band and its fallback can reach
        width = min(depth + GUARD_SLACK + 1, size)
        indices, valid, flags = self.closest(queries, positives, width)
        candidates = valid & ~flags.positive
        rank = candidates.long().cumsum(dim=1) - 1
        in_band = candidates & (rank >= self.range_min) & (rank < self.range_max)
        self.add_guard_counts(in_band & flags.exact, in_band & flags.near)
        ranked, ranked_valid = compact(indices, valid & ~flags.excluded, depth)

        # More duplicates than the slack among a query's closest items: rank its whole gallery under the guard.
        rescan = (ranked_valid.sum(dim=1) < depth) & (width < size)
        if bool(rescan.any()):
            rescanned = rescan.nonzero(as_tuple=True)[0]
            ranked[rescanned], ranked_valid[rescanned] = self.guarded_top(queries[rescanned],
                                                                               positives[rescanned], depth)
        if not bool(ranked_valid[:, 0].all()):
            raise no_negative_error(positives[~ranked_valid[:, 0]], size)

        # A uniform k-subset of each row's band positions, kept in rank order.
        band_start = min(self.range_min, depth)
        band_stop = min(self.range_max, depth)
        band = torch.arange(band_start, band_stop, device=ranked.device)
        keys = uniform((rows, band.numel()), generator, ranked.device)
        keys = keys.masked_fill(~ranked_valid[:, band_start:band_stop], -1.0)
        chosen = band[keys.topk(min(k, band.numel()), dim=1).indices.sort(dim=1).values]
        chosen_valid = ranked_valid.gather(1, chosen)
        # Fallback order: the ranks after the band, then those before it, nearest to the band first.
        after = torch.arange(band_stop, depth, device=ranked.device)
        before = torch.arange(band_start - 1, -1, -1, device=ranked.device)
        spare = torch.cat([after, before])[None, :].expand(rows, -1)
        positions = torch.cat([chosen, spare], dim=1)
        position_valid = torch.cat([chosen_valid, ranked_valid.gather(1, spare)], dim=1)
        from_band = chosen_valid.sum(dim=1)
        self.count("fallback_negatives", (k - from_band).clamp(min=0).sum())
        negatives, _ = fill_cyclic(ranked.gather(1, positions), position_valid, k)
        return negatives

    def options(self) -> dict[str, int]:
        return {"range_min": self.range_min, "range_max": self.range_max}
