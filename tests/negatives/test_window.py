"""The semi-hard window: its cosine bounds mean ``d(q, p) < d(q, n) < d(q, p) + margin`` for each distance."""

from __future__ import annotations

import pytest
import torch

from cirlab.distances import build_distance
from cirlab.negatives.window import TIE_TOLERANCE, window_bounds


@pytest.mark.parametrize(("distance", "margin"), [("cosine", 0.2), ("euclidean", 0.3)])
def test_bounds_are_the_window_in_cosine_terms(distance: str, margin: float) -> None:
    target_cosines = torch.tensor([0.9, 0.5, -0.2], dtype=torch.float64)
    lower, upper = window_bounds(target_cosines, margin, build_distance(distance))
    assert torch.equal(upper, target_cosines - TIE_TOLERANCE)
    d = build_distance(distance).from_unit_cosine
    assert torch.allclose(d(lower), d(target_cosines) + margin)  # the far edge is margin farther than the target
    assert (lower < upper).all()
