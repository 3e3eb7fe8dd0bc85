"""``semi-hard``: FaceNet's semi-hard negatives, searched over the whole gallery.

A negative ``n`` of query ``q`` with target ``p`` is semi-hard when ``d(q, p) < d(q, n) < d(q, p) + margin``
(the window of :mod:`~cirlab.negatives.window`, where items within a rounding tolerance of the target's
cosine count as equally close): farther than the target (so not a likely false negative, and not the
collapsing hardest case), yet inside the margin (so the triplet loss still learns from it). The ``k``
negatives are a uniform sample of the qualifying gallery items. One chunked pass (a matrix product per chunk) keeps, per
query, the window items with the ``k + GUARD_SLACK`` largest random keys; the guard then removes the
target's duplicates from that short list. A query with more duplicates than the slack in its list
is scanned again with the guard applied to every item (the same keys, so the same sample). On CPUs with
bf16 instructions large galleries are scanned through the bf16 screen (:mod:`~cirlab.negatives.screen`),
which finds the same windows; keys are then read for the window's members only.

Fallback when fewer than ``k`` items qualify (counted in ``fallback_negatives``): every qualifying item
is taken, then the hardest items *beyond* the window (the closest with ``d >= d(q, p) + margin``),
then a uniform choice among the items closer than the target (``d <= d(q, p)``); with a gallery too
small for ``k`` admissible items, picks repeat. This second pass runs only for the queries that need it.

Statistics: ``semi_hard_candidates`` sums the window sizes before the guard (divide by ``queries``);
``guard_exact_duplicates`` / ``guard_near_duplicates`` count duplicates that would have been picked.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from cirlab.distances import Distance, build_distance
from cirlab.errors import ConfigError
from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD
from cirlab.negatives.ledger import Ledger
from cirlab.negatives.scan import (
    GUARD_SLACK,
    RandomKeys,
    RunningTopK,
    compact,
    fill_with_fallback,
    scan_gallery,
    top_per_row,
)
from cirlab.negatives.screen import intra_op_threads
from cirlab.negatives.window import window_bounds


@SAMPLERS.register("semi-hard")
class SemiHardSampler(GallerySampler):
    """Uniform negatives from the semi-hard window d(q, p) < d(q, n) < d(q, p) + margin.

    Args:
        margin: width of the window, in units of ``distance`` (match the triplet loss's margin).
        distance: a registered distance (:data:`~cirlab.distances.DISTANCES`: ``"cosine"``, 1 - cos, the
            default, or ``"euclidean"`` between unit vectors), its config dict, or a
            :class:`~cirlab.distances.Distance`; use the triplet loss's.
        ledger_margin: the ledger's window width, in units of ``distance``; None: ``margin`` (so every
            window pick counts as ``ledger_semi_hard``).
    """

    logged_stats = (*COMMON_STATS, "semi_hard_candidates")

    def __init__(self, gallery: Gallery, margin: float = 0.2, distance: str | dict[str, Any] | Distance = "cosine",
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        if margin <= 0:
            raise ConfigError(f"semi-hard sampler: margin must be positive, got {margin}")
        self.margin = float(margin)
        self.distance = build_distance(distance)
        # The ledger's window is this sampler's own (margin and distance), unless given another margin.
        self.ledger = Ledger(self.margin if ledger_margin is None else float(ledger_margin), self.distance)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        size = len(self.gallery)
        # The window in cosine terms: cos(q, n) < cos(q, p) and cos(q, n) > cosine at d(q, p) + margin.
        target_cosines = (queries * self.gallery.features[positives]).sum(dim=1)
        lower, upper = window_bounds(target_cosines, self.margin, self.distance)
        keys = RandomKeys(size, positives.shape[0], generator, queries.device)
        width = min(k + GUARD_SLACK, size)
        indices, valid, window_sizes = self._window(queries, positives, upper, lower, keys, width)
        flags = self.guard.flags(positives, indices.clamp(min=0))
        candidates = valid & ~flags.positive
        would_pick = candidates & (candidates.long().cumsum(dim=1) <= k)
        self.add_guard_counts(would_pick & flags.exact, would_pick & flags.near)
        self.count("semi_hard_candidates", window_sizes.sum())
        picks, picks_valid = compact(indices, valid & ~flags.excluded, k)

        rescan = (picks_valid.sum(dim=1) < k) & (window_sizes > width)
        if bool(rescan.any()):
            rows = rescan.nonzero(as_tuple=True)[0]
            picks[rows], picks_valid[rows] = self._guarded_window(queries[rows], positives[rows], upper[rows],
                                                                  lower[rows], keys, rows, k)
        qualifying = picks_valid.sum(dim=1)
        self.count("fallback_negatives", (k - qualifying).sum())
        short = qualifying < k
        if bool(short.any()):
            rows = short.nonzero(as_tuple=True)[0]
            extra, extra_valid = self._fallback(queries[rows], positives[rows], upper[rows], lower[rows], keys, rows, k)
            picks[rows], _ = fill_with_fallback(picks[rows], picks_valid[rows], extra, extra_valid, positives[rows],
                                                size, k)
        return picks

    def _window(self, queries: Tensor, positives: Tensor, upper: Tensor, lower: Tensor, keys: RandomKeys,
                width: int) -> tuple[Tensor, Tensor, Tensor]:
        """The unguarded window items with the ``width`` largest keys, ``(indices, valid)`` ``[B, width]``, and
        each window's size ``[B]``."""
        rows = positives.shape[0]
        screen = self.screen(rows)
        if screen is not None:
            members, items = screen.window(queries, lower, upper, self.chunk_size)
            with intra_op_threads(1):  # small operations (see intra_op_threads)
                _, indices, valid = top_per_row(members, keys.pairs(members, items), items, rows, width, -1.0)
                return indices, valid, torch.bincount(members, minlength=rows)
        window = RunningTopK(rows, width, fill=-1.0, dtype=torch.float64, device=queries.device)
        window_sizes = torch.zeros(rows, dtype=torch.long, device=queries.device)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size):
            in_window = (chunk.cosines < upper[:, None]) & (chunk.cosines > lower[:, None])
            window_sizes += in_window.sum(dim=1)
            window.update(keys.chunk(chunk.start, chunk.stop).masked_fill_(~in_window, -1.0), chunk.columns)
        _, indices, valid = window.result()
        return indices, valid, window_sizes

    def _guarded_window(self, queries: Tensor, positives: Tensor, upper: Tensor, lower: Tensor, keys: RandomKeys,
                        rows: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """The window picks of ``rows`` with the guard applied to every item (same keys as the fast pass)."""
        window = RunningTopK(len(rows), k, fill=-1.0, dtype=torch.float64, device=queries.device)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size, guard=self.guard):
            admissible = (chunk.cosines < upper[:, None]) & (chunk.cosines > lower[:, None]) & ~chunk.flags.excluded
            window.update(keys.chunk(chunk.start, chunk.stop, rows).masked_fill_(~admissible, -1.0), chunk.columns)
        _, indices, valid = window.result()
        return indices, valid

    def _fallback(self, queries: Tensor, positives: Tensor, upper: Tensor, lower: Tensor, keys: RandomKeys,
                  rows: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Second pass for queries short of semi-hard items: ``[R, 2k]`` candidates in preference order."""
        beyond = RunningTopK(len(rows), k, fill=float("-inf"), dtype=queries.dtype, device=queries.device)
        closer = RunningTopK(len(rows), k, fill=-1.0, dtype=torch.float64, device=queries.device)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size, guard=self.guard):
            admissible = ~chunk.flags.excluded
            is_beyond = admissible & (chunk.cosines <= lower[:, None])
            is_closer = admissible & (chunk.cosines >= upper[:, None])
            beyond.update(chunk.cosines.masked_fill_(~is_beyond, float("-inf")), chunk.columns)
            closer.update(keys.chunk(chunk.start, chunk.stop, rows).masked_fill_(~is_closer, -1.0), chunk.columns)
        _, beyond_indices, beyond_valid = beyond.result()
        _, closer_indices, closer_valid = closer.result()
        return torch.cat([beyond_indices, closer_indices], dim=1), torch.cat([beyond_valid, closer_valid], dim=1)

    def options(self) -> dict[str, Any]:
        return {"margin": self.margin, "distance": self.distance.config()}
