"""``hard``: the true top-k by a naive loop, chunking invariance, top_m sampling and guard counts."""

from __future__ import annotations

from unittest.mock import patch

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, Gallery, HardSampler, build_sampler

from .conftest import make_gallery, naive_excluded, near_target_queries


def _sample(sampler, gallery, queries, positives, k, seed=0):
    batch = BatchInfo(categories=gallery.categories[positives])
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed))


def _naive_ranking(gallery, query, target, threshold, guarded=True):
    """Admissible items sorted closest first (explicit loop over the gallery)."""
    excluded = naive_excluded(gallery, target, threshold) if guarded else {target}
    scored = [(float(query @ gallery.features[j]), j) for j in range(len(gallery)) if j not in excluded]
    return [j for _, j in sorted(scored, reverse=True)]


@pytest.mark.parametrize("chunk_size", [1000, 64, 7])
def test_returns_the_true_top_k_closest_first(gallery, chunk_size: int) -> None:
    positives = torch.tensor([0, 1, 10, 11, 40, 200])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=1)
    negatives = _sample(build_sampler("hard", gallery, chunk_size=chunk_size), gallery, queries, positives, 8)
    for row, target in enumerate(positives.tolist()):
        assert negatives[row].tolist() == _naive_ranking(gallery, queries[row], target, 0.98)[:8]


def test_hardest_means_closest_on_a_hand_made_gallery() -> None:
    features = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    gallery = Gallery.from_raw(features, torch.zeros(5, dtype=torch.long))
    negatives = _sample(build_sampler("hard", gallery), gallery, torch.tensor([[1.0, 0.0]]), torch.tensor([0]), 3)
    assert negatives.tolist() == [[1, 4, 2]]  # cosines 0.8, 0.6, 0.0; the opposite item (-1) is easiest


def _naive_guard_counts(gallery, queries, positives, pool):
    """(exact, near) duplicates of each target among its unguarded ``pool`` closest items, summed."""
    exact = near = 0
    for row, target in enumerate(positives.tolist()):
        for item in _naive_ranking(gallery, queries[row], target, None, guarded=False)[:pool]:
            if gallery.duplicate_groups[target] >= 0 and gallery.duplicate_groups[item] == \
                    gallery.duplicate_groups[target]:
                exact += 1
            elif float(gallery.features[item] @ gallery.features[target]) > 0.98:
                near += 1
    return exact, near


def test_guard_counts_equal_the_duplicates_an_unguarded_ranking_would_pick(gallery) -> None:
    positives = torch.tensor([0, 2, 10, 12, 100])  # exact, exact, near, near, unique
    queries = near_target_queries(gallery, positives, noise=0.05, seed=2)  # duplicates rank first
    sampler = build_sampler("hard", gallery)
    negatives = _sample(sampler, gallery, queries, positives, 4)
    for row, target in enumerate(positives.tolist()):
        assert not naive_excluded(gallery, target, 0.98) & set(negatives[row].tolist())
    stats = sampler.stats()
    expected = _naive_guard_counts(gallery, queries, positives, 4)
    assert (stats["guard_exact_duplicates"], stats["guard_near_duplicates"]) == expected == (2, 2)


def test_top_m_draws_k_distinct_items_from_the_m_closest(gallery) -> None:
    positives = torch.tensor([30, 31, 90])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=3)
    pools = [_naive_ranking(gallery, queries[row], target, 0.98)[:12] for row, target in enumerate(positives.tolist())]
    # Each query 40 times in one batch: every row draws its own subset.
    sampler = build_sampler("hard", gallery, top_m=12, chunk_size=150)
    negatives = _sample(sampler, gallery, queries.repeat(40, 1), positives.repeat(40), 4)
    seen = [set() for _ in positives]
    for row, picks in enumerate(negatives.tolist()):
        pool = pools[row % 3]
        assert len(set(picks)) == 4 and set(picks) <= set(pool)
        cosines = (gallery.features[picks] @ queries[row % 3]).tolist()
        assert cosines == sorted(cosines, reverse=True)  # hardest first
        seen[row % 3] |= set(picks)
    assert all(len(s) == 12 for s in seen)  # every pool item gets drawn


def test_more_duplicates_than_the_slack_are_rescanned() -> None:
    gallery = make_gallery(size=300, dim=8, seed=4)
    features, groups = gallery.features.clone(), gallery.duplicate_groups.clone()
    features[1:80] = features[0]  # 80 copies of item 0: its closest items are all copies
    groups[:80] = 0
    gallery = Gallery(features, gallery.categories, groups)
    positives = torch.tensor([5, 150])
    queries = near_target_queries(gallery, positives, noise=0.1, seed=5)
    sampler = build_sampler("hard", gallery, chunk_size=64)
    with patch.object(HardSampler, "guarded_top", wraps=sampler.guarded_top) as rescan:
        negatives = _sample(sampler, gallery, queries, positives, 6)
    assert rescan.call_count == 1
    for row, target in enumerate(positives.tolist()):
        assert negatives[row].tolist() == _naive_ranking(gallery, queries[row], target, 0.98)[:6]
    stats = sampler.stats()
    assert (stats["guard_exact_duplicates"], stats["guard_near_duplicates"]) == \
        _naive_guard_counts(gallery, queries, positives, 6)
    assert stats["guard_exact_duplicates"] >= 5


def test_fewer_admissible_items_than_k_repeat_and_count() -> None:
    gallery = make_gallery(size=4, exact_pairs=1)  # items 0-1 duplicates: target 0 has 2 admissible items
    sampler = build_sampler("hard", gallery)
    negatives = _sample(sampler, gallery, gallery.features[:1], torch.tensor([0]), 5)
    assert set(negatives.flatten().tolist()) == {2, 3}
    assert sampler.stats()["fallback_negatives"] == 3


def test_no_admissible_item_is_a_config_error() -> None:
    gallery = make_gallery(size=2, exact_pairs=1)
    with pytest.raises(ConfigError, match=r"no gallery item can be a negative of gallery item\(s\) \[0\]"):
        _sample(build_sampler("hard", gallery), gallery, gallery.features[:1], torch.tensor([0]), 1)


def test_refuses_a_bad_top_m(gallery) -> None:
    with pytest.raises(ConfigError, match="top_m must be at least 1"):
        build_sampler("hard", gallery, top_m=0)
