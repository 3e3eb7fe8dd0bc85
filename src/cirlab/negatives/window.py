"""The semi-hard window around a query's target: the one definition the semi-hard sampler and the ledger share.

A gallery item ``n`` is inside the window of query ``q`` with target ``p`` when
``d(q, p) < d(q, n) < d(q, p) + margin``: farther from the query than the target, yet close enough for a
triplet loss with that margin to learn from it. The samplers compare cosines of unit vectors, so the
window is a cosine interval ``lower < cos(q, n) < upper`` (every registered distance is a decreasing
function of the cosine). Items within :data:`TIE_TOLERANCE` in cosine of the target count as exactly
as close as the target, not farther.
"""

from __future__ import annotations

from torch import Tensor

from cirlab.distances import Distance

#: Items whose cosine with the query is within this of the target's count as exactly as close as the
#: target (not farther): float32 matrix products and row dot products of the same pair differ by
#: rounding, and the target's own copies must not slip into the window by a rounding error.
TIE_TOLERANCE = 1e-5


def window_bounds(target_cosines: Tensor, margin: float, distance: Distance) -> tuple[Tensor, Tensor]:
    """``(lower, upper)`` cosines of the window of each query whose target has cosine ``target_cosines``.

    An item is inside when ``lower < cos(q, n) < upper``, at least as close as the target when
    ``cos(q, n) >= upper``, and beyond the window when ``cos(q, n) <= lower``; ``margin`` is in units of
    ``distance``.
    """
    upper = target_cosines - TIE_TOLERANCE
    lower = distance.to_unit_cosine(distance.from_unit_cosine(target_cosines) + margin)
    return lower, upper
