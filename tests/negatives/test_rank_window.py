"""``rank-window``: the band of a naive ranking, exact picks under a fixed generator, uniformity, fallback, guard."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, build_sampler

from .conftest import make_gallery, naive_excluded, near_target_queries
from .naive import admissible_ranking, assert_guarded_and_ledgered, cosine


def _sample(sampler, gallery, queries, positives, k, seed=0):
    batch = BatchInfo(categories=gallery.categories[positives])
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed)), batch


@pytest.mark.parametrize("chunk_size", [1000, 64, 7])
def test_picks_equal_a_uniform_sample_of_the_naive_band(gallery, chunk_size: int) -> None:
    positives = torch.tensor([0, 1, 10, 40, 200, 299])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=1)
    sampler = build_sampler("rank-window", gallery, chunk_size=chunk_size)  # ranks 10..109
    negatives, batch = _sample(sampler, gallery, queries, positives, 8, seed=4)
    # The same draws: one uniform per (query, band position), from the same generator.
    uniforms = torch.rand((len(positives), 100), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for row, target in enumerate(positives.tolist()):
        band = admissible_ranking(gallery, queries[row], target)[10:110]
        chosen = sorted(sorted(range(100), key=lambda j: -uniforms[row, j].item())[:8])
        assert negatives[row].tolist() == [band[j] for j in chosen]
    assert sampler.stats()["fallback_negatives"] == 0
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


def test_draws_cover_the_band_uniformly() -> None:
    gallery = make_gallery(size=200, dim=8, seed=3)
    positives = torch.tensor([17])
    queries = near_target_queries(gallery, positives, noise=0.2, seed=3)
    band = admissible_ranking(gallery, queries[0], 17)[5:25]
    sampler = build_sampler("rank-window", gallery, range_min=5, range_max=25)
    draws, _ = _sample(sampler, gallery, queries.expand(2000, -1), positives.expand(2000), 4)
    counts = torch.bincount(draws.flatten(), minlength=len(gallery)).double()
    assert set(counts.nonzero().flatten().tolist()) == set(band)
    expected = draws.numel() / len(band)
    assert counts[band].min() > 0.8 * expected and counts[band].max() < 1.2 * expected
    for row in draws.tolist()[:50]:  # distinct, in rank order
        assert len(set(row)) == 4 and [band.index(j) for j in row] == sorted(band.index(j) for j in row)


def test_a_short_band_falls_back_to_the_ranks_after_then_before_it() -> None:
    gallery = make_gallery(size=40, dim=8, seed=6, exact_pairs=1)
    positives = torch.tensor([0, 20])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=6)
    sampler = build_sampler("rank-window", gallery, range_min=30, range_max=34)
    negatives, batch = _sample(sampler, gallery, queries, positives, 8)
    fallback = 0
    for row, target in enumerate(positives.tolist()):
        ranking = admissible_ranking(gallery, queries[row], target)
        band = ranking[30:34]
        picks = negatives[row].tolist()
        assert sorted(picks[:len(band)], key=ranking.index) == picks[:len(band)] and set(picks[:len(band)]) == set(band)
        rest = ranking[34:] + ranking[:30][::-1]
        assert picks[len(band):] == rest[:8 - len(band)]
        fallback += 8 - len(band)
    assert sampler.stats()["fallback_negatives"] == fallback  # 38 and 39 admissible items: bands of 4 and 4
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


def test_a_gallery_smaller_than_range_min_takes_the_deepest_ranks_first() -> None:
    gallery = make_gallery(size=8, dim=8, seed=2)
    queries = near_target_queries(gallery, torch.tensor([3]), noise=0.3, seed=2)
    sampler = build_sampler("rank-window", gallery)  # ranks 10..109 of 7 admissible items
    negatives, _ = _sample(sampler, gallery, queries, torch.tensor([3]), 9)
    ranking = admissible_ranking(gallery, queries[0], 3)
    assert negatives.tolist()[0] == (ranking[::-1] + ranking[::-1])[:9]
    assert sampler.stats()["fallback_negatives"] == 9


def test_guard_counts_the_duplicates_inside_the_unguarded_band(gallery) -> None:
    positives = torch.arange(0, 20)  # every duplicate pair: the partner is among the closest
    queries = near_target_queries(gallery, positives, noise=0.05, seed=2)
    sampler = build_sampler("rank-window", gallery, range_min=0, range_max=3)
    negatives, batch = _sample(sampler, gallery, queries, positives, 2)
    exact = near = 0
    for row, target in enumerate(positives.tolist()):
        unguarded = sorted((j for j in range(len(gallery)) if j != target),
                           key=lambda j: -cosine(gallery, queries[row], j))[:3]
        groups = gallery.duplicate_groups
        for item in set(unguarded) & naive_excluded(gallery, target, 0.98):
            is_exact = bool(groups[target] >= 0 and groups[item] == groups[target])
            exact, near = exact + is_exact, near + (not is_exact)
    stats = sampler.stats()
    assert (stats["guard_exact_duplicates"], stats["guard_near_duplicates"]) == (exact, near) == (10, 10)
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


@pytest.mark.parametrize(("options", "match"), [
    ({"range_min": -1}, "need 0 <= range_min < range_max"), ({"range_min": 5, "range_max": 5}, "range_min < range_max"),
])
def test_refuses_bad_ranges(gallery, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sampler("rank-window", gallery, **options)
