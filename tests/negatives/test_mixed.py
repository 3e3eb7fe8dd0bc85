"""``mixed``: the split, each part drawn by its own sampler, no repeats, the completion, statistics and ledger."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import COMMON_STATS, BatchInfo, build_sampler
from cirlab.negatives.mixed import complete_distinct, first_occurrences

from .conftest import make_gallery, naive_excluded, near_target_queries
from .naive import admissible_ranking, assert_guarded_and_ledgered


def _inputs(gallery, positives, noise=0.3, seed=1):
    queries = near_target_queries(gallery, positives, noise=noise, seed=seed)
    return queries, BatchInfo(categories=gallery.categories[positives])


@pytest.mark.parametrize(("share", "k", "split"), [(0.5, 8, (4, 4)), (0.5, 5, (3, 2)), (0.5, 3, (2, 1)),
                                                   (0.25, 6, (2, 4)), (0.0, 4, (0, 4)), (1.0, 4, (4, 0))])
def test_split_rounds_half_up(gallery, share: float, k: int, split: tuple[int, int]) -> None:
    assert build_sampler("mixed", gallery, share=share).split(k) == split


def test_half_hard_half_random_takes_the_hardest_then_random_picks_not_yet_taken(gallery) -> None:
    positives = torch.tensor([0, 5, 10, 40, 200])
    queries, batch = _inputs(gallery, positives)
    negatives = build_sampler("mixed", gallery).sample(queries, positives, batch, 8, torch.Generator().manual_seed(3))
    # The parts on their own, in the mixture's order on the same generator: hard (draws nothing), then random's
    # 8 picks (its 4 slots plus 4 spares).
    generator = torch.Generator().manual_seed(3)
    hard = build_sampler("hard", gallery).sample(queries, positives, batch, 4, generator)
    random = build_sampler("random", gallery).sample(queries, positives, batch, 8, generator)
    for row, target in enumerate(positives.tolist()):
        assert hard[row].tolist() == admissible_ranking(gallery, queries[row], target)[:4]
        expected = hard[row].tolist()
        for item in random[row].tolist():
            if item not in expected and len(expected) < 8:
                expected.append(item)
        assert negatives[row].tolist() == expected


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_a_share_of_zero_or_one_is_the_one_sampler(gallery, share: float) -> None:
    positives = torch.arange(0, 300, 31)
    queries, batch = _inputs(gallery, positives)
    mixed = build_sampler("mixed", gallery, first="semi-hard", second="category", share=share,
                          first_options={"margin": 0.3})
    alone = build_sampler("semi-hard", gallery, margin=0.3) if share else build_sampler("category", gallery)
    expected = alone.sample(queries, positives, batch, 6, torch.Generator().manual_seed(2))
    assert torch.equal(mixed.sample(queries, positives, batch, 6, torch.Generator().manual_seed(2)), expected)


def test_no_repeats_where_the_gallery_allows_and_repeats_only_where_it_does_not() -> None:
    gallery = make_gallery(size=12, dim=8, seed=3, exact_pairs=1)
    positives = torch.tensor([0, 5, 11]).repeat(20)  # 10, 11 and 11 admissible items
    queries, batch = _inputs(gallery, positives)
    # Two random parts collide often in so small a gallery; every row still gets 10 distinct items.
    sampler = build_sampler("mixed", gallery, first="random", second="random", share=0.5)
    negatives = sampler.sample(queries, positives, batch, 10, torch.Generator().manual_seed(0))
    for row, target in enumerate(positives.tolist()):
        admissible = set(range(12)) - naive_excluded(gallery, target, 0.98)
        assert len(set(negatives[row].tolist())) == 10 and set(negatives[row].tolist()) <= admissible
    # 14 negatives from at most 11 admissible items: each admissible item first, then repeats.
    sampler = build_sampler("mixed", gallery)
    negatives = sampler.sample(queries[:3], positives[:3], BatchInfo(batch.categories[:3]), 14,
                               torch.Generator().manual_seed(1))
    for row, target in enumerate(positives[:3].tolist()):
        admissible = set(range(12)) - naive_excluded(gallery, target, 0.98)
        assert set(negatives[row, :len(admissible)].tolist()) == admissible == set(negatives[row].tolist())
    assert sampler.stats()["fallback_negatives"] >= (14 - 10) + (14 - 11) * 2


def test_statistics_sum_the_parts_and_prefix_their_own(gallery) -> None:
    positives = torch.arange(0, 20)  # every duplicate pair: hard meets the guard
    queries, batch = _inputs(gallery, positives, noise=0.05, seed=2)
    sampler = build_sampler("mixed", gallery, first="hard", second="semi-hard", second_options={"margin": 0.3})
    assert sampler.logged_stats == (*COMMON_STATS, *(f"first/{key}" for key in COMMON_STATS),
                                    *(f"second/{key}" for key in (*COMMON_STATS, "semi_hard_candidates")))
    negatives = sampler.sample(queries, positives, batch, 6, torch.Generator().manual_seed(0))
    stats = sampler.stats()
    assert list(stats) == list(sampler.logged_stats)
    assert stats["first/negatives"] == 60 and stats["second/negatives"] == 120 and stats["negatives"] == 120
    for key in ("guard_exact_duplicates", "guard_near_duplicates"):
        assert stats[key] == stats[f"first/{key}"] + stats[f"second/{key}"] > 0
    assert stats["fallback_negatives"] >= stats["first/fallback_negatives"] + stats["second/fallback_negatives"]
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)
    sampler.reset_stats()
    assert all(value == 0 for value in sampler.stats().values())


def test_first_occurrences_and_exact_completion() -> None:
    indices = torch.tensor([[3, 1, 3, 2, 1], [4, 4, 4, 0, 9]])
    valid = torch.tensor([[True, True, True, True, True], [False, True, True, True, True]])
    assert first_occurrences(indices, valid).tolist() == [[True, True, False, True, False],
                                                          [False, True, False, True, True]]
    gallery = make_gallery(size=30, dim=8, seed=1, exact_pairs=2)
    guard = build_sampler("random", gallery).guard
    picks, found, repeated = complete_distinct(gallery, guard, 7, torch.tensor([0, 10]),
                                               torch.tensor([[5, 5, 6], [11, 12, 11]]),
                                               torch.ones(2, 3, dtype=torch.bool), 29, torch.Generator())
    assert found.tolist() == [2, 2] and repeated.tolist() == [1, 0]  # 28 and 29 admissible items
    for row, target in enumerate((0, 10)):
        assert picks[row, :2].tolist() == [[5, 6], [11, 12]][row]
        assert set(picks[row].tolist()) == set(range(30)) - naive_excluded(gallery, target, 0.98)


@pytest.mark.parametrize(("options", "match"), [
    ({"share": 1.5}, "share must lie in"), ({"first": "hardest"}, "unknown negative sampler 'hardest'"),
    ({"second_options": {"margin": 0.1}}, "negative sampler 'random'"),
])
def test_refuses_bad_options(gallery, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sampler("mixed", gallery, **options)
