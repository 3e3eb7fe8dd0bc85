"""The in-batch semi-hard comparison: both sides against a naive loop on a tiny batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cirlab.bench.pml import MARGIN, batch_embeddings, boundary_anchors, cirlab_in_batch, pml_semi_hard_sets


def naive_semi_hard(queries: torch.Tensor, targets: torch.Tensor, distance: str) -> list[set[int]]:
    """d(a,p) < d(a,n) <= d(a,p) + margin by an explicit loop in float64."""
    q, t = F.normalize(queries.double(), dim=1), F.normalize(targets.double(), dim=1)
    sets = []
    for a in range(len(q)):
        def d(x, y):
            return 1 - float(x @ y) if distance == "cosine" else float((x - y).norm())
        positive = d(q[a], t[a])
        sets.append({n for n in range(len(t)) if n != a and positive < d(q[a], t[n]) <= positive + MARGIN})
    return sets


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_the_miner_and_cirlab_find_the_naive_semi_hard_sets(distance: str) -> None:
    queries, targets = batch_embeddings(48, 16, torch.Generator().manual_seed(3))
    expected = naive_semi_hard(queries, targets, distance)
    assert sum(len(s) for s in expected) > 10  # the batch does exercise the window
    assert any(not s for s in expected)  # and has anchors without any semi-hard negative
    assert pml_semi_hard_sets(queries, targets, distance) == expected
    picks, stats = cirlab_in_batch(queries, targets, 47, distance, torch.Generator().manual_seed(0))
    for anchor, wanted in enumerate(expected):
        assert set(picks[anchor, :len(wanted)].tolist()) == wanted
        assert anchor not in picks[anchor].tolist()
    assert stats["negatives"] - stats["fallback_negatives"] == sum(len(s) for s in expected)


def test_boundary_anchors_count_ties_with_the_target() -> None:
    queries, targets = batch_embeddings(8, 16, torch.Generator().manual_seed(4))
    targets[5] = targets[2]  # anchor 2 sees item 5 exactly as close as its own target
    counts = boundary_anchors(queries, targets, "cosine")
    assert counts[2] >= 1 and counts[5] >= 1
