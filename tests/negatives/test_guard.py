"""The duplicate guard against an explicit loop."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import DuplicateGuard

from .conftest import naive_excluded


@pytest.mark.parametrize("threshold", [0.98, None])
def test_flags_match_a_loop_for_shared_items(gallery, threshold) -> None:
    guard = DuplicateGuard(gallery, threshold)
    positives = torch.tensor([0, 1, 10, 11, 25, 100])
    items = torch.arange(len(gallery))
    flags = guard.flags(positives, items)
    for row, target in enumerate(positives.tolist()):
        expected = naive_excluded(gallery, target, threshold)
        assert set(flags.excluded[row].nonzero().flatten().tolist()) == expected
        assert flags.positive[row].nonzero().flatten().tolist() == [target]
    # The three masks are disjoint; pairs 0-1 are exact duplicates, 10-11 near ones.
    assert not (flags.positive & flags.exact).any() and not (flags.exact & flags.near).any()
    assert flags.exact[0, 1] and flags.guarded[0, 1] and not flags.near[0, 1]
    assert bool(flags.near[2, 11]) == (threshold is not None)


def test_flags_for_per_row_candidates_and_precomputed_cosines(gallery) -> None:
    guard = DuplicateGuard(gallery, 0.98)
    positives = torch.tensor([0, 10])
    candidates = torch.tensor([[1, 0, 5], [11, 12, 10]])
    flags = guard.flags(positives, candidates)
    assert flags.exact.tolist() == [[True, False, False], [False, False, False]]
    assert flags.near.tolist() == [[False, False, False], [True, False, False]]
    assert flags.positive.tolist() == [[False, True, False], [False, False, True]]
    cosines = gallery.features[positives] @ gallery.features.T
    shared = guard.flags(positives, torch.arange(len(gallery)), cosines)
    assert torch.equal(shared.excluded, guard.flags(positives, torch.arange(len(gallery))).excluded)


def test_threshold_must_be_a_cosine(gallery) -> None:
    with pytest.raises(ConfigError, match="near_duplicate_threshold"):
        DuplicateGuard(gallery, 1.5)
