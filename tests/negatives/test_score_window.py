"""``score-window`` (SimANS): the candidates, the exact Gumbel-top-k picks, the sampling distribution, guard, ledger."""

from __future__ import annotations

import math

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, build_sampler

from .conftest import make_gallery, naive_excluded, near_target_queries
from .naive import admissible_ranking, assert_guarded_and_ledgered, cosine


def _sample(sampler, gallery, queries, positives, k, seed=0):
    batch = BatchInfo(categories=gallery.categories[positives])
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed)), batch


def _weights(gallery, query, target, pool, a, b, scale):
    """SimANS's unnormalised probabilities exp(-a (scale (s_n - s_p) - b)^2) of the pool's items."""
    positive = cosine(gallery, query, target)
    return [math.exp(-a * (scale * (cosine(gallery, query, j) - positive) - b) ** 2) for j in pool]


@pytest.mark.parametrize("chunk_size", [1000, 64, 7])
def test_picks_equal_a_naive_gumbel_top_k_over_the_top_m_candidates(gallery, chunk_size: int) -> None:
    positives = torch.tensor([0, 2, 10, 40, 123, 299])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=1)
    a, b, scale, top_m, k = 0.5, 1.0, 20.0, 30, 6
    sampler = build_sampler("score-window", gallery, a=a, b=b, scale=scale, top_m=top_m, chunk_size=chunk_size)
    negatives, batch = _sample(sampler, gallery, queries, positives, k, seed=7)
    # The same draws: one uniform per (query, candidate position), from the same generator.
    uniforms = torch.rand((len(positives), top_m), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for row, target in enumerate(positives.tolist()):
        pool = admissible_ranking(gallery, queries[row], target)[:top_m]
        weights = _weights(gallery, queries[row], target, pool, a, b, scale)
        keys = [math.log(w) - math.log(-math.log(u)) for w, u in zip(weights, uniforms[row].tolist())]
        chosen = sorted(sorted(range(top_m), key=lambda j: -keys[j])[:k])
        assert negatives[row].tolist() == [pool[j] for j in chosen]
    assert sampler.stats()["fallback_negatives"] == 0
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


def test_single_draws_follow_the_simans_distribution() -> None:
    gallery = make_gallery(size=200, dim=8, seed=3)
    positives = torch.tensor([17])
    queries = near_target_queries(gallery, positives, noise=0.2, seed=3)
    a, b, scale, top_m = 0.5, 0.0, 10.0, 12
    pool = admissible_ranking(gallery, queries[0], 17)[:top_m]
    weights = _weights(gallery, queries[0], 17, pool, a, b, scale)
    expected = torch.tensor(weights) / sum(weights)
    assert expected.max() < 0.5 and expected.min() < 0.5 * expected.max()  # a distribution worth testing
    sampler = build_sampler("score-window", gallery, a=a, b=b, scale=scale, top_m=top_m)
    draws, _ = _sample(sampler, gallery, queries.expand(8000, -1), positives.expand(8000), 1)
    counts = torch.bincount(draws.flatten(), minlength=len(gallery)).double()
    assert set(counts.nonzero().flatten().tolist()) <= set(pool)
    observed = counts[pool] / counts.sum()
    assert (observed - expected.double()).abs().max() < 0.02


def test_the_window_peaks_at_the_positive_plus_b() -> None:
    """With a sharp window the draws concentrate on the candidate whose score is nearest s_p + b / scale."""
    gallery = make_gallery(size=200, dim=8, seed=5)
    positives = torch.tensor([40])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=5)
    pool = admissible_ranking(gallery, queries[0], 40)[:50]
    positive = cosine(gallery, queries[0], 40)
    for b in (-5.0, 0.0):
        nearest = min(pool, key=lambda j: abs(100 * (cosine(gallery, queries[0], j) - positive) - b))
        sampler = build_sampler("score-window", gallery, a=50.0, b=b, top_m=50)
        draws, _ = _sample(sampler, gallery, queries.expand(200, -1), positives.expand(200), 1)
        assert torch.bincount(draws.flatten()).argmax().item() == nearest


def test_guard_counts_the_duplicates_among_the_unguarded_candidates(gallery) -> None:
    positives = torch.arange(0, 20)  # every duplicate pair: the partner ranks among the closest
    queries = near_target_queries(gallery, positives, noise=0.05, seed=2)
    sampler = build_sampler("score-window", gallery, top_m=5)
    negatives, batch = _sample(sampler, gallery, queries, positives, 3)
    exact = near = 0
    for row, target in enumerate(positives.tolist()):
        everything = sorted((j for j in range(len(gallery)) if j != target),
                            key=lambda j: -cosine(gallery, queries[row], j))[:5]
        for item in everything:
            if item in naive_excluded(gallery, target, 0.98):
                exact += bool(gallery.duplicate_groups[target] >= 0 and
                              gallery.duplicate_groups[item] == gallery.duplicate_groups[target])
                near += not (gallery.duplicate_groups[target] >= 0 and
                             gallery.duplicate_groups[item] == gallery.duplicate_groups[target])
    stats = sampler.stats()
    assert (stats["guard_exact_duplicates"], stats["guard_near_duplicates"]) == (exact, near) == (10, 10)
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


def test_fewer_candidates_than_k_repeat_and_count() -> None:
    gallery = make_gallery(size=5, exact_pairs=1)  # target 0: items 2, 3, 4 admissible
    sampler = build_sampler("score-window", gallery)
    negatives, _ = _sample(sampler, gallery, gallery.features[:1], torch.tensor([0]), 7)
    assert set(negatives.flatten().tolist()) == {2, 3, 4} and sampler.stats()["fallback_negatives"] == 4


@pytest.mark.parametrize(("options", "match"), [
    ({"a": -1.0}, "a must be non-negative"), ({"top_m": 0}, "top_m must be at least 1"),
    ({"scale": 0.0}, "scale must be positive"),
])
def test_refuses_bad_options(gallery, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sampler("score-window", gallery, **options)
