"""``drop-pool``: QuRe's hard negatives, between the two steepest drops of the similarity curve after the target.

QuRe (Kwak et al., "QuRe: Query-Relevant Retrieval through Hard Negative Sampling in Composed Image
Retrieval", ICML 2025; code: jackwaky/QuRe, ``rerank_score`` in ``data/fashionIQ.py`` and ``data/cirr.py``)
ranks the corpus by the query's similarity and reads the curve of scores *after* the target: the items just
below the target are still relevant (likely false negatives), and a steep drop marks where relevance ends.
Its negatives are the items between the two steepest drops. The rule implemented here, for one query:

1. Rank the admissible gallery items (the target and its guarded duplicates removed) by cosine with the
   query, most similar first; the curve is ``a_0 >= a_1 >= … >= a_{M-1}``, the cosines of the ``M`` items
   ranked after the target (cosine below the target's by more than the rounding tolerance
   :data:`~cirlab.negatives.window.TIE_TOLERANCE`).
2. The drops are ``d_i = a_{i+1} - a_i`` for ``i = 0 … M-2``. Walk them from the steepest (most negative;
   equal drops in curve order) and take the first two consecutive ones in that order whose positions differ
   by more than ``consecutive_threshold`` (QuRe's ``consecutive_threshold``, 1 in its configurations): the
   steepest and second steepest when they are far enough apart, else the second and third, and so on.
3. With ``i1 < i2`` their positions, the pool is ``a_{i1+1} … a_{i2}``: the items after the first drop down
   to the last item before the second, at least ``consecutive_threshold + 1`` items.
4. The ``k`` negatives are a uniform sample of the pool without replacement (QuRe draws from the pool
   without repeating a negative until it is exhausted), returned in rank order.

QuRe ranks the whole corpus (FashionIQ: the query's category); here the whole training gallery. The curve
needs every item's score, so queries are ranked in blocks of rows whose ``[rows, N]`` scores hold a quarter of
:data:`~cirlab.negatives.scan.CHUNK_ELEMENTS` (a block's sort, masks and keys take a few times that), so
memory stays bounded whatever ``N`` is: one sort of the whole gallery per query and step, the most
expensive of the samplers.

Edge cases (QuRe's code has no answer to them: it fails on an empty pool):

* no two drops qualify (fewer than ``consecutive_threshold + 2`` drops, i.e. fewer than
  ``consecutive_threshold + 3`` items after the target, or only adjacent steep drops), including a target
  ranked last (no item after it): the pool is empty, counted in ``drop_pool_no_pair``;
* the pool holds fewer than ``k`` items (or is empty): every pool item is taken, then a uniform sample of the
  other items ranked after the target, then a uniform sample of the items ranked before it, counted in
  ``fallback_negatives``; picks repeat only when the gallery holds fewer than ``k`` admissible items.

Statistics: ``drop_pool_candidates`` sums the pool sizes (divide by ``queries``: QuRe's "average size of the
negative set"); ``guard_exact_duplicates`` / ``guard_near_duplicates`` count the target's duplicates whose
cosine lies within the pool's band of cosines (candidates the guard kept out).
"""

from __future__ import annotations

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives import scan
from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD, no_negative_error
from cirlab.negatives.scan import RandomKeys, fill_cyclic, scan_gallery
from cirlab.negatives.window import TIE_TOLERANCE

#: QuRe's ``consecutive_threshold`` (its FashionIQ and CIRR configurations).
DEFAULT_CONSECUTIVE_THRESHOLD = 1
_POOL, _AFTER, _BEFORE = 0, 1, 2  # preference tiers of a ranked item


def drop_pair(curve: Tensor, valid: Tensor, consecutive_threshold: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(i1, i2, found)`` per row of the curves [R, M] (descending, ``valid`` a prefix of each row).

    The drops ``d_i = curve[i + 1] - curve[i]`` between valid items are ordered steepest first (ties by
    position); the first consecutive pair in that order whose positions differ by more than
    ``consecutive_threshold`` gives ``i1 < i2``. Rows without such a pair have ``found`` False.
    """
    rows, length = curve.shape
    if length < 2:
        empty = torch.zeros(rows, dtype=torch.long, device=curve.device)
        return empty, empty, torch.zeros(rows, dtype=torch.bool, device=curve.device)
    drops = curve[:, 1:] - curve[:, :-1]
    drop_valid = valid[:, 1:] & valid[:, :-1]
    order = drops.masked_fill(~drop_valid, float("inf")).sort(dim=1, stable=True).indices
    ordered_valid = drop_valid.gather(1, order)
    first, second = order[:, :-1], order[:, 1:]
    qualifies = ((second - first).abs() > consecutive_threshold) & ordered_valid[:, 1:]
    found = qualifies.any(dim=1)
    pair = qualifies.long().argmax(dim=1, keepdim=True)  # the first qualifying pair (0 when none)
    a, b = first.gather(1, pair).squeeze(1), second.gather(1, pair).squeeze(1)
    return torch.minimum(a, b), torch.maximum(a, b), found


@SAMPLERS.register("drop-pool")
class DropPoolSampler(GallerySampler):
    """QuRe: uniform negatives between the two steepest drops of the similarity curve after the target.

    Args:
        consecutive_threshold: the two drops' positions on the curve must differ by more than this (QuRe: 1).
    """

    logged_stats = (*COMMON_STATS, "drop_pool_candidates", "drop_pool_no_pair")

    def __init__(self, gallery: Gallery, consecutive_threshold: int = DEFAULT_CONSECUTIVE_THRESHOLD,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        if int(consecutive_threshold) < 0:
            raise ConfigError(f"drop-pool sampler: consecutive_threshold must be non-negative, got "
                              f"{consecutive_threshold}")
        self.consecutive_threshold = int(consecutive_threshold)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        size, rows = len(self.gallery), positives.shape[0]
        keys = RandomKeys(size, rows, generator, queries.device)
        target_cosines = (queries * self.gallery.features[positives]).sum(dim=1)
        negatives = torch.empty((rows, k), dtype=torch.long, device=queries.device)
        block = max(1, scan.CHUNK_ELEMENTS // (4 * size))
        for start in range(0, rows, block):
            block_rows = torch.arange(start, min(start + block, rows), device=queries.device)
            negatives[block_rows] = self._sample_block(queries[block_rows], positives[block_rows],
                                                       target_cosines[block_rows], keys, block_rows, k)
        return negatives

    def _sample_block(self, queries: Tensor, positives: Tensor, target_cosines: Tensor, keys: RandomKeys,
                      rows: Tensor, k: int) -> Tensor:
        """Negatives of a block of queries, from their whole sorted similarity curves."""
        size = len(self.gallery)
        cosines = torch.empty((len(rows), size), dtype=queries.dtype, device=queries.device)
        excluded = torch.empty((len(rows), size), dtype=torch.bool, device=queries.device)
        guarded = torch.empty_like(excluded)
        exact = torch.empty_like(excluded)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size, guard=self.guard):
            cosines[:, chunk.start:chunk.stop] = chunk.cosines
            excluded[:, chunk.start:chunk.stop] = chunk.flags.excluded
            guarded[:, chunk.start:chunk.stop] = chunk.flags.guarded
            exact[:, chunk.start:chunk.stop] = chunk.flags.exact
        admissible = ~excluded
        if not bool(admissible.any(dim=1).all()):
            raise no_negative_error(positives[~admissible.any(dim=1)], size)
        # The admissible ranking (ties by gallery index), and the curve of the items after the target.
        values, order = cosines.masked_fill(excluded, float("-inf")).sort(dim=1, descending=True, stable=True)
        ranked_valid = admissible.gather(1, order)
        after = ranked_valid & (values < target_cosines[:, None] - TIE_TOLERANCE)
        first_after = (ranked_valid & ~after).sum(dim=1)  # the curve starts here (after is a suffix of the valid)
        positions = torch.arange(size, device=queries.device)[None, :]
        curve_index = (positions + first_after[:, None]).clamp(max=size - 1)
        curve = values.gather(1, curve_index)
        curve_valid = after.gather(1, curve_index) & (positions + first_after[:, None] < size)
        i1, i2, found = drop_pair(curve, curve_valid, self.consecutive_threshold)
        pool_start = torch.where(found, first_after + i1 + 1, torch.zeros_like(i1))
        pool_stop = torch.where(found, first_after + i2 + 1, torch.zeros_like(i2))  # exclusive
        in_pool = (positions >= pool_start[:, None]) & (positions < pool_stop[:, None]) & ranked_valid
        self.count("drop_pool_candidates", in_pool.sum())
        self.count("drop_pool_no_pair", (~found).sum())

        # Guarded duplicates within the pool's band of cosines: candidates the guard kept out.
        top = values.gather(1, pool_start[:, None].clamp(max=size - 1))
        bottom = values.gather(1, (pool_stop[:, None] - 1).clamp(min=0))
        in_band = guarded & found[:, None] & (cosines <= top) & (cosines >= bottom)
        self.add_guard_counts(in_band & exact, in_band & ~exact)

        # Pool first, then the other items after the target, then those before it; uniform within a tier.
        tier = torch.where(in_pool, _POOL, torch.where(after, _AFTER, _BEFORE))
        item_keys = keys.chunk(0, size, rows).gather(1, order)
        preference = (2 - tier).double() + item_keys  # tiers never mix: keys lie in [0, 1)
        preference = preference.masked_fill(~ranked_valid, -1.0)
        take = min(k, size)
        chosen = preference.topk(take, dim=1).indices
        chosen_tier = tier.gather(1, chosen)
        # In tier order, rank order within a tier.
        chosen = chosen.gather(1, (chosen_tier * size + chosen).sort(dim=1).indices)
        chosen_valid = ranked_valid.gather(1, chosen)
        from_pool = (in_pool.gather(1, chosen) & chosen_valid).sum(dim=1)
        self.count("fallback_negatives", (k - from_pool).sum())
        negatives, _ = fill_cyclic(order.gather(1, chosen), chosen_valid, k)
        return negatives

    def options(self) -> dict[str, int]:
        return {"consecutive_threshold": self.consecutive_threshold}
