"""``hard``: online hard-negative mining over the whole gallery — the items closest to each query.

Hardest means *closest* to the query (highest cosine), never farthest. With ``top_m > k`` the ``k``
negatives are a uniform sample of the ``top_m`` closest, which keeps most of the difficulty while
avoiding the same few items every step (and softens the damage of any false negative the guard
misses). Returned negatives are ordered hardest first.

One chunked pass keeps each query's ``top_m + GUARD_SLACK + 1`` closest items; the guard then removes
the target and its duplicates from that short list. Only a query with more duplicates than the
slack among its closest items is scanned again, with the guard applied to every item. On CPUs with bf16
instructions large galleries are scanned through the bf16 screen (:mod:`~cirlab.negatives.screen`), which
ranks the same items in the same order.
``guard_exact_duplicates`` / ``guard_near_duplicates`` count the duplicates that an unguarded ranking
would have put in the top ``top_m``. When the gallery holds fewer than ``k`` admissible items for a
query, picks are repeated (``fallback_negatives`` counts the repeats).

"Closest" ranks by the cosine of the normalised query and gallery features. Every registered distance
(:mod:`cirlab.distances`) is a decreasing function of that cosine, so the ranking, and hence the
sampler, is the same whichever distance the loss uses: unlike ``semi-hard``, it needs no distance option.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import SAMPLERS, GallerySampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD, GuardFlags, no_negative_error
from cirlab.negatives.scan import GUARD_SLACK, compact, fill_cyclic, uniform
from cirlab.negatives.screen import intra_op_threads

#: Items ranked beyond the pool by the bf16 screen, so that a few guarded duplicates leave the pool whole.
HEAD_SLACK = 4


@SAMPLERS.register("hard")
class HardSampler(GallerySampler):
    """The k gallery items closest to the query (or k drawn uniformly among the top_m closest).

    Args:
        top_m: size of the pool the ``k`` negatives are drawn from; None (or ``<= k``) returns the
            ``k`` closest themselves.
    """

    def __init__(self, gallery: Gallery, top_m: int | None = None,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        if top_m is not None and int(top_m) < 1:
            raise ConfigError(f"hard sampler: top_m must be at least 1 (or null), got {top_m}")
        self.top_m = None if top_m is None else int(top_m)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        pool_size = max(k, self.top_m or k)
        size = len(self.gallery)
        width = min(pool_size + GUARD_SLACK + 1, size)
        indices, valid, flags = self._closest(queries, positives, pool_size, width)
        self._count_guard(valid & ~flags.positive, flags, pool_size)
        pool, pool_valid = compact(indices, valid & ~flags.excluded, pool_size)

        # More duplicates than the slack among a query's closest items: rank its whole gallery under the guard.
        rescan = (pool_valid.sum(dim=1) < pool_size) & (width < size)
        if bool(rescan.any()):
            rows = rescan.nonzero(as_tuple=True)[0]
            pool[rows], pool_valid[rows] = self.guarded_top(queries[rows], positives[rows], pool_size)
        if not bool(pool_valid[:, 0].all()):
            raise no_negative_error(positives[~pool_valid[:, 0]], size)

        if pool_size > k:
            # A uniform k-subset of each row's valid pool, kept in hardness order.
            keys = uniform(tuple(pool.shape), generator, pool.device)
            keys = torch.where(pool_valid, keys, torch.full_like(keys, -1.0))
            chosen = keys.topk(k, dim=1).indices.sort(dim=1).values
            pool, pool_valid = pool.gather(1, chosen), pool_valid.gather(1, chosen)
        negatives, repeated = fill_cyclic(pool, pool_valid, k)
        self.count("fallback_negatives", repeated.sum())
        return negatives

    def _closest(self, queries: Tensor, positives: Tensor, pool_size: int,
                 width: int) -> tuple[Tensor, Tensor, GuardFlags]:
        """Each query's closest items, unguarded and closest first, ``(indices, valid)``, with their guard flags.

        The fp32 scan ranks ``width`` items. The bf16 screen ranks :data:`HEAD_SLACK` more than the pool for
        each query, and ``width`` only for queries with fewer than ``pool_size`` admissible items among them:
        what follows reads a query's list only up to its ``pool_size``-th admissible item, so both give the
        same picks and counts.
        """
        screen = self.screen(positives.shape[0])
        if screen is None:
            return self.closest(queries, positives, width)
        _, indices, valid = screen.closest(queries, min(pool_size + HEAD_SLACK, width), self.chunk_size)
        with intra_op_threads(1):  # small operations (see intra_op_threads)
            flags = self.guard.flags(positives, indices.clamp(min=0))
            short = ((valid & ~flags.excluded).sum(dim=1) < pool_size).nonzero(as_tuple=True)[0]
        if not short.numel() or indices.shape[1] == width:
            return indices, valid, flags
        pad = width - indices.shape[1]
        indices, valid = F.pad(indices, (0, pad), value=-1), F.pad(valid, (0, pad), value=False)
        flags = GuardFlags(*(F.pad(mask, (0, pad), value=False) for mask in (flags.positive, flags.exact, flags.near)))
        _, indices[short], valid[short] = screen.closest(queries, width, self.chunk_size, rows=short)
        short_flags = self.guard.flags(positives[short], indices[short].clamp(min=0))
        for mask, short_mask in zip((flags.positive, flags.exact, flags.near),
                                    (short_flags.positive, short_flags.exact, short_flags.near)):
            mask[short] = short_mask
        return indices, valid, flags

    def _count_guard(self, candidates: Tensor, flags: GuardFlags, pool_size: int) -> None:
        """Count the duplicates among the first ``pool_size`` candidates of the unguarded ranking."""
        in_pool = candidates & (candidates.long().cumsum(dim=1) <= pool_size)
        self.add_guard_counts(in_pool & flags.exact, in_pool & flags.near)

    def options(self) -> dict[str, int | None]:
        return {"top_m": self.top_m}
