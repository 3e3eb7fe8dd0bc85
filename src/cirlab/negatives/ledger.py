"""The negative ledger: a summary of the negatives a sampler actually served, counted on the device.

Why strategies win or collapse is mostly a matter of *what* they push queries away from. Every call
of :meth:`~cirlab.negatives.base.GallerySampler.sample` therefore tallies its ``[B, k]`` served
negatives (:class:`Ledger`), whatever the strategy, into these counters (sums over served negatives,
reported with the sampler's other statistics and summed over processes once per epoch):

``ledger_harder``
    at least as close to the query as its target: ``s(q, n) >= s(q, p)`` (cosine similarity of the
    normalised query and gallery features, ties within :data:`~cirlab.negatives.window.TIE_TOLERANCE`
    counting as equally close);
``ledger_semi_hard``
    inside the semi-hard window ``d(q, p) < d(q, n) < d(q, p) + margin``; in cosine distance
    ``s(q, p) - margin < s(q, n) < s(q, p)``;
``ledger_easier``
    beyond the window: ``d(q, n) >= d(q, p) + margin``, which a triplet loss with that margin gives no
    gradient;
``ledger_reference``
    the query's own reference image, or an exact copy of it (same pixels), as far as the batch says
    where the reference sits in the gallery (:attr:`BatchInfo.references`);
``ledger_same_category``
    from the query's own category;
``ledger_true_false_negatives``
    items that satisfy the query as well as its target does (:class:`TrueMatches`), counted only for
    batches whose ground truth is known (the synthetic benchmark);
``ledger_with_ground_truth``
    the served negatives that were checked for that (0 on data without ground truth).

The three bands partition the served negatives. The window's ``margin`` is each sampler's
``ledger_margin`` option (default :data:`DEFAULT_LEDGER_MARGIN`, the synthetic configuration's triplet
margin; set it to the loss's margin so that "easier" means "no gradient"), in cosine distance; the
``semi-hard`` sampler uses its own margin and distance unless given one, so that its window picks are
exactly its ``ledger_semi_hard``. :func:`ledger_shares` turns the counters into shares.

Cost: one gather of the ``B x k`` served features and their dot products with the queries, plus a few
gathers and comparisons of per-item integers (one AND per negative for the ground truth); no host
synchronisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from cirlab.distances import Distance
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.window import window_bounds

#: The ledger's counters, in the order samplers report them (see the module notes).
LEDGER_STATS: tuple[str, ...] = (
    "ledger_harder", "ledger_semi_hard", "ledger_easier", "ledger_reference", "ledger_same_category",
    "ledger_true_false_negatives", "ledger_with_ground_truth",
)
#: Width of the ledger's semi-hard window when a sampler has no margin of its own (the synthetic
#: configuration's triplet margin).
DEFAULT_LEDGER_MARGIN = 0.2

#: Counters that :func:`ledger_shares` divides by the served negatives (the guard's are blocked
#: candidates per served negative: a rate, which can exceed 1 when draws are blocked repeatedly).
_PER_NEGATIVE: tuple[str, ...] = (
    "ledger_harder", "ledger_semi_hard", "ledger_easier", "ledger_reference", "ledger_same_category",
    "guard_exact_duplicates", "guard_near_duplicates",
)


@dataclass(frozen=True)
class TrueMatches:
    """Which gallery items satisfy each query as well as its target does, as bit sets compared on the device.

    Items are described by facets (for the synthetic benchmark: the category and each attribute), and
    every value of every facet owns one bit of an int64: an item's ``item_bits`` set the bits of its
    values. A query's ``ruled_out`` bits are the values a satisfying item cannot have (another category,
    another value than the target's where the query pins it, the reference's where it only asks for a
    change). Item ``n`` satisfies query ``q`` when ``item_bits[n] & ruled_out[q] == 0``: one AND per
    served negative, whatever the number of facets.
    """

    item_bits: Tensor  # [N] int64, the value bits of each gallery item
    ruled_out: Tensor  # [R] int64, per query the value bits a satisfying item does not have

    def __post_init__(self) -> None:
        if self.item_bits.ndim != 1 or self.ruled_out.ndim != 1:
            raise ValueError(f"true matches: item_bits must be [N] and ruled_out [R]; got "
                             f"{tuple(self.item_bits.shape)} and {tuple(self.ruled_out.shape)}")

    def __len__(self) -> int:
        return self.ruled_out.shape[0]

    def matches(self, items: Tensor) -> Tensor:
        """``[R, k]`` bool: whether gallery item ``items[r, j]`` satisfies query ``r``."""
        bits = self.item_bits.index_select(0, items.reshape(-1)).view(items.shape)
        return (bits & self.ruled_out[:, None]) == 0

    def rows(self, indices: Tensor) -> TrueMatches:
        """The rules of the queries at ``indices`` (the gallery's bits are shared, not copied)."""
        return TrueMatches(self.item_bits, self.ruled_out[indices.to(self.ruled_out.device)])

    def to(self, device: str | torch.device) -> TrueMatches:
        """The same rules on ``device``."""
        return TrueMatches(self.item_bits.to(device), self.ruled_out.to(device))


class Ledger:
    """Tallies served negatives into the :data:`LEDGER_STATS` counters.

    Args:
        margin: width of the semi-hard window, in units of ``distance``.
        distance: the distance the window is measured in (the samplers' default is cosine distance).
    """

    def __init__(self, margin: float, distance: Distance) -> None:
        self.margin = float(margin)
        self.distance = distance

    def tally(self, gallery: Gallery, queries: Tensor, positives: Tensor, batch: BatchInfo,
              negatives: Tensor) -> dict[str, Tensor | int]:
        """Counts (0-d tensors on the gallery's device, or plain ints) of the served ``negatives`` [B, k] of ``queries``
        [B, d] (L2-normalised) with targets ``positives`` [B]; counters the batch cannot inform
        (no references, no ground truth) are left out."""
        features = gallery.features
        target_cosines = (queries * features[positives]).sum(dim=1)
        lower, upper = window_bounds(target_cosines, self.margin, self.distance)
        cosines = (_gather(features, negatives) * queries[:, None, :]).sum(dim=2)
        harder = cosines >= upper[:, None]
        easier = ~harder & (cosines <= lower[:, None])
        counts = {
            "ledger_harder": harder.sum(),
            "ledger_semi_hard": (~harder & ~easier).sum(),
            "ledger_easier": easier.sum(),
            "ledger_same_category": (_gather(gallery.categories, negatives) == batch.categories[:, None]).sum(),
        }
        if batch.references is not None:
            counts["ledger_reference"] = _is_reference(gallery, batch.references, negatives).sum()
        if batch.true_matches is not None:
            counts["ledger_true_false_negatives"] = batch.true_matches.matches(negatives).sum()
            counts["ledger_with_ground_truth"] = negatives.numel()
        return counts


def _gather(values: Tensor, indices: Tensor) -> Tensor:
    """``values[indices]`` for gallery-indexed ``values`` (an index_select: cheaper than advanced indexing)."""
    return values.index_select(0, indices.reshape(-1)).view(*indices.shape, *values.shape[1:])


def _is_reference(gallery: Gallery, references: Tensor, negatives: Tensor) -> Tensor:
    """``[B, k]``: the negative is the query's reference (gallery index, -1 when absent) or an exact copy."""
    groups = gallery.duplicate_groups
    references = references[:, None]
    reference_groups = torch.where(references >= 0, groups[references.clamp(min=0)], torch.full_like(references, -1))
    return (negatives == references) | ((_gather(groups, negatives) == reference_groups) & (reference_groups >= 0))


def ledger_shares(stats: Mapping[str, float], prefix: str = "") -> dict[str, float]:
    """The ledger as shares of the served negatives, from a sampler's summed statistics.

    ``stats`` holds the counters under ``prefix + name`` (``prefix="sampler/"`` for a run's logged
    epoch rows). Returns, under the counters' names: the share of served negatives in each band
    (``ledger_harder``, ``ledger_semi_hard``, ``ledger_easier``; they sum to 1), that are the reference
    (``ledger_reference``) and from the query's category (``ledger_same_category``); the guard's blocked
    candidates per served negative (``guard_exact_duplicates``, ``guard_near_duplicates``); and
    ``ledger_true_false_negatives`` as a share of the negatives checked against ground truth, left out
    when none were (real data). Counters missing from ``stats`` are left out; no negatives: ``{}``.
    """
    negatives = float(stats.get(prefix + "negatives", 0.0))
    if not negatives > 0:
        return {}
    shares = {name: float(stats[prefix + name]) / negatives for name in _PER_NEGATIVE if prefix + name in stats}
    checked = float(stats.get(prefix + "ledger_with_ground_truth", 0.0))
    if checked > 0 and prefix + "ledger_true_false_negatives" in stats:
        shares["ledger_true_false_negatives"] = float(stats[prefix + "ledger_true_false_negatives"]) / checked
    return shares
