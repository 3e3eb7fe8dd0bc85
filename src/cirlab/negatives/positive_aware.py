"""``positive-aware``: the hardest items that stay clearly below the positive (NV-Retriever's TopK-PercPos).

Hard mining's nearest items are often false negatives: other images that satisfy the query as well as its
target. NV-Retriever (Moreira et al., 2024) anchors the choice on the positive's own score: a candidate ``n``
of query ``q`` with target ``p`` qualifies only when it is clearly less similar than the positive, and the
``k`` negatives are the most similar qualifying candidates (the "TopK" of the method's name). With ``s`` the
cosine of the normalised query and gallery features:

* TopK-PercPos (the default): ``s(q, n) < s(q, p) - |s(q, p)| * (1 - tau)``, ``tau = 0.95``, the setting
  NV-Retriever-v1 was trained with; for a positive score this is ``s(q, n) < tau * s(q, p)``. The ``|.|`` is
  sentence-transformers' sign-safe form (``mine_hard_negatives(relative_margin=1 - tau)``): ``tau * s(q, p)``
  would lie *above* a negative ``s(q, p)`` and admit items closer than the target.
* TopK-MarginPos (with ``margin`` set): ``s(q, n) < s(q, p) - margin`` (sentence-transformers'
  ``absolute_margin``; NV-Retriever's ablation used 0.05).

Whatever the rule, the threshold is at most ``s(q, p)`` minus the window's rounding tolerance
(:data:`~cirlab.negatives.window.TIE_TOLERANCE`), so an item as close as the target never qualifies.
Negatives are returned hardest first. One chunked pass keeps each query's ``k + GUARD_SLACK + 1`` most
similar qualifying items; the false-negative guard then removes the target's duplicates, and a query with
more duplicates than the slack among them is scanned again with the guard applied to every item.

When fewer than ``k`` admissible items qualify, the rest are the admissible items just above the threshold,
least similar first (the ones least likely to be false negatives among those the rule refused), counted in
``fallback_negatives``; with a gallery too small for ``k`` admissible items, picks repeat.

Statistics: ``positive_aware_skipped`` sums, over queries, the gallery items other than the target that the
rule refused as too close to the positive (divide by ``queries``); ``guard_exact_duplicates`` /
``guard_near_duplicates`` count the duplicates among the ``k`` most similar qualifying items of the unguarded
ranking.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD
from cirlab.negatives.scan import GUARD_SLACK, RunningTopK, compact, fill_with_fallback, scan_gallery
from cirlab.negatives.window import TIE_TOLERANCE

#: NV-Retriever-v1's TopK-PercPos share of the positive's score.
DEFAULT_TAU = 0.95


def positive_thresholds(target_cosines: Tensor, tau: float, margin: float | None) -> Tensor:
    """Per query, the cosine a candidate must stay below: ``s_p - |s_p| (1 - tau)``, or ``s_p - margin``,
    never above ``s_p - TIE_TOLERANCE``."""
    drop = target_cosines.abs() * (1.0 - tau) if margin is None else torch.full_like(target_cosines, margin)
    threshold = target_cosines - drop
    return torch.minimum(threshold, target_cosines - TIE_TOLERANCE)


@SAMPLERS.register("positive-aware")
class PositiveAwareSampler(GallerySampler):
    """The k most similar items below a share of the positive's similarity (NV-Retriever's TopK-PercPos).

    Args:
        tau: the share of the positive's score a candidate must stay below (NV-Retriever: 0.95); in (0, 1].
        margin: when set, the rule is TopK-MarginPos instead: ``s(q, n) < s(q, p) - margin`` (``tau`` unused).
    """

    logged_stats = (*COMMON_STATS, "positive_aware_skipped")

    def __init__(self, gallery: Gallery, tau: float = DEFAULT_TAU, margin: float | None = None,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        if not 0 < float(tau) <= 1:
            raise ConfigError(f"positive-aware sampler: tau must lie in (0, 1], got {tau}")
        if margin is not None and not float(margin) >= 0:
            raise ConfigError(f"positive-aware sampler: margin must be non-negative (or null for tau), got {margin}")
        self.tau = float(tau)
        self.margin = None if margin is None else float(margin)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        size, rows = len(self.gallery), positives.shape[0]
        target_cosines = (queries * self.gallery.features[positives]).sum(dim=1)
        threshold = positive_thresholds(target_cosines, self.tau, self.margin)
        width = min(k + GUARD_SLACK + 1, size)
        ranking = RunningTopK(rows, width, fill=float("-inf"), dtype=queries.dtype, device=queries.device)
        qualifying = torch.zeros(rows, dtype=torch.long, device=queries.device)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size):
            below = chunk.cosines < threshold[:, None]
            qualifying += below.sum(dim=1)
            ranking.update(chunk.cosines.masked_fill_(~below, float("-inf")), chunk.columns)
        # Every item but the target is either below the threshold or skipped (the target never qualifies).
        self.count("positive_aware_skipped", rows * (size - 1) - qualifying.sum())
        _, indices, valid = ranking.result()
        flags = self.guard.flags(positives, indices.clamp(min=0))
        candidates = valid & ~flags.positive
        would_pick = candidates & (candidates.long().cumsum(dim=1) <= k)
        self.add_guard_counts(would_pick & flags.exact, would_pick & flags.near)
        picks, picks_valid = compact(indices, valid & ~flags.excluded, k)

        # More duplicates than the slack among a query's candidates: rank its whole gallery under the guard.
        rescan = (picks_valid.sum(dim=1) < k) & (qualifying > width)
        if bool(rescan.any()):
            rescanned = rescan.nonzero(as_tuple=True)[0]
            picks[rescanned], picks_valid[rescanned] = self._guarded_top(
                queries[rescanned], positives[rescanned], threshold[rescanned], k, below_threshold=True)
        found = picks_valid.sum(dim=1)
        self.count("fallback_negatives", (k - found).sum())
        short = found < k
        if bool(short.any()):
            rows_short = short.nonzero(as_tuple=True)[0]
            extra, extra_valid = self._guarded_top(queries[rows_short], positives[rows_short],
                                                   threshold[rows_short], k, below_threshold=False)
            picks[rows_short], _ = fill_with_fallback(picks[rows_short], picks_valid[rows_short], extra, extra_valid,
                                                      positives[rows_short], size, k)
        return picks

    def _guarded_top(self, queries: Tensor, positives: Tensor, threshold: Tensor, k: int,
                     below_threshold: bool) -> tuple[Tensor, Tensor]:
        """The ``k`` admissible items of each query, the guard applied to every item: below the threshold the most
        similar first, or (``below_threshold=False``) at or above it the least similar first."""
        ranking = RunningTopK(positives.shape[0], k, fill=float("-inf"), dtype=queries.dtype, device=queries.device)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size, guard=self.guard):
            below = chunk.cosines < threshold[:, None]
            keep = (below if below_threshold else ~below) & ~chunk.flags.excluded
            values = chunk.cosines if below_threshold else chunk.cosines.neg()
            ranking.update(values.masked_fill(~keep, float("-inf")), chunk.columns)
        _, indices, valid = ranking.result()
        return indices, valid

    def options(self) -> dict[str, float | None]:
        return {"tau": self.tau, "margin": self.margin}
