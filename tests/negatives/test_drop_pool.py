"""``drop-pool`` (QuRe): the pool of a naive transcription of QuRe's loop, a hand-made curve, the edge cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, Gallery, build_sampler, scan
from cirlab.negatives.drop_pool import drop_pair

from .conftest import make_gallery, near_target_queries
from .naive import admissible_ranking, assert_guarded_and_ledgered, cosine


def _sample(sampler, gallery, queries, positives, k, seed=0):
    batch = BatchInfo(categories=gallery.categories[positives])
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed)), batch


def _naive_pool(gallery, query, target, consecutive_threshold=1):
    """(pool, after, before): QuRe's loop over the admissible ranking, as its rerank_score writes it."""
    ranking = admissible_ranking(gallery, query, target)
    positive = cosine(gallery, query, target)
    after = [j for j in ranking if cosine(gallery, query, j) < positive - 1e-5]
    before = [j for j in ranking if j not in after]
    scores = [cosine(gallery, query, j) for j in after]
    differences = [scores[i + 1] - scores[i] for i in range(len(scores) - 1)]
    steepest = sorted(range(len(differences)), key=lambda i: (differences[i], i))
    for first, second in itertools.pairwise(steepest):
        i1, i2 = min(first, second), max(first, second)
        if i2 - i1 > consecutive_threshold:
            return after[i1 + 1:i2 + 1], after, before
    return [], after, before


def _spread(cosines):
    """Unit vectors with the given cosines with the query (1, 0, 0), in different directions."""
    angles = torch.arange(len(cosines)) * (2 * torch.pi / len(cosines))
    c = torch.tensor(cosines)
    s = (1 - c * c).sqrt()
    return torch.stack([c, s * angles.cos(), s * angles.sin()], dim=1)


def test_a_hand_made_curve() -> None:
    # Target 0.95 (one item above it, 0.97); after it 0.9, 0.89 | drop 0.29 | 0.6, 0.59, 0.58 | drop 0.38 | 0.2, 0.19.
    cosines = [0.95, 0.97, 0.9, 0.89, 0.6, 0.59, 0.58, 0.2, 0.19]
    gallery = Gallery.from_raw(_spread(cosines), torch.zeros(len(cosines), dtype=torch.long))
    sampler = build_sampler("drop-pool", gallery)
    negatives, _ = _sample(sampler, gallery, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0]), 3)
    assert negatives.tolist() == [[4, 5, 6]]
    assert sampler.stats()["drop_pool_candidates"] == 3 and sampler.stats()["fallback_negatives"] == 0
    # Five negatives: the pool, then the other items after the target (uniformly), in rank order within each.
    negatives, _ = _sample(sampler, gallery, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0]), 5)
    picks = negatives.tolist()[0]
    assert picks[:3] == [4, 5, 6] and set(picks[3:]) <= {2, 3, 7, 8} and picks[3] < picks[4]


def test_adjacent_steepest_drops_are_skipped_for_the_next_pair() -> None:
    # The curve after the target 0.95 is 0.9, 0.85, 0.55, 0.24, 0.23: drops 0.05, 0.30, 0.31, 0.01 at positions
    # 0-3. In steepest order the pairs (2, 1) and (1, 0) are adjacent; the first pair further apart is (0, 3).
    cosines = [0.95, 0.9, 0.85, 0.55, 0.24, 0.23]
    gallery = Gallery.from_raw(_spread(cosines), torch.zeros(len(cosines), dtype=torch.long))
    query = torch.tensor([[1.0, 0.0, 0.0]])
    pool, _, _ = _naive_pool(gallery, query[0], 0)
    assert pool == [2, 3, 4]
    negatives, _ = _sample(build_sampler("drop-pool", gallery), gallery, query, torch.tensor([0]), 3)
    assert negatives.tolist() == [[2, 3, 4]]


@pytest.mark.parametrize("consecutive_threshold", [1, 3])
def test_pools_equal_the_naive_loop_on_random_galleries(gallery, consecutive_threshold: int) -> None:
    positives = torch.tensor([0, 1, 10, 40, 123, 200, 299])
    queries = near_target_queries(gallery, positives, noise=0.4, seed=1)
    sampler = build_sampler("drop-pool", gallery, consecutive_threshold=consecutive_threshold, chunk_size=64)
    negatives, batch = _sample(sampler, gallery, queries, positives, 4)
    candidates = no_pair = fallback = 0
    for row, target in enumerate(positives.tolist()):
        pool, after, _ = _naive_pool(gallery, queries[row], target, consecutive_threshold)
        ranking = admissible_ranking(gallery, queries[row], target)
        picks = negatives[row].tolist()
        taken = min(len(pool), 4)
        assert set(picks[:taken]) <= set(pool) and len(set(picks)) == 4
        assert picks[:taken] == sorted(picks[:taken], key=ranking.index)
        others_after = [j for j in after if j not in pool]
        if len(others_after) >= 4 - taken:  # the fallback's first tier suffices
            assert set(picks[taken:]) <= set(others_after)
        candidates, no_pair, fallback = candidates + len(pool), no_pair + (not pool), fallback + 4 - taken
    stats = sampler.stats()
    assert (stats["drop_pool_candidates"], stats["drop_pool_no_pair"], stats["fallback_negatives"]) == \
        (candidates, no_pair, fallback)
    assert candidates > 0
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


def test_draws_are_uniform_over_the_pool() -> None:
    gallery = make_gallery(size=150, dim=8, seed=3)
    positives = torch.tensor([28])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=3)
    pool, _, _ = _naive_pool(gallery, queries[0], 28)
    assert len(pool) >= 10
    draws, _ = _sample(build_sampler("drop-pool", gallery), gallery, queries.expand(1500, -1),
                       positives.expand(1500), 2)
    counts = torch.bincount(draws.flatten(), minlength=len(gallery)).double()
    assert set(counts.nonzero().flatten().tolist()) == set(pool)
    expected = draws.numel() / len(pool)
    assert counts[pool].min() > 0.7 * expected and counts[pool].max() < 1.3 * expected


def test_blocks_of_queries_give_the_same_negatives(gallery, monkeypatch) -> None:
    positives = torch.arange(0, 300, 13)
    queries = near_target_queries(gallery, positives, noise=0.4, seed=4)
    whole, _ = _sample(build_sampler("drop-pool", gallery), gallery, queries, positives, 5, seed=3)
    monkeypatch.setattr(scan, "CHUNK_ELEMENTS", 4 * len(gallery) * 2)  # two queries per block
    blocked, _ = _sample(build_sampler("drop-pool", gallery, chunk_size=50), gallery, queries, positives, 5, seed=3)
    assert torch.equal(whole, blocked)


def test_a_target_ranked_last_takes_uniform_items_before_it() -> None:
    cosines = [-0.9, 0.5, 0.4, 0.3, 0.2]
    gallery = Gallery.from_raw(_spread(cosines), torch.zeros(5, dtype=torch.long))
    sampler = build_sampler("drop-pool", gallery)
    negatives, _ = _sample(sampler, gallery, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0]), 3)
    picks = negatives.tolist()[0]
    assert len(set(picks)) == 3 and set(picks) <= {1, 2, 3, 4} and picks == sorted(picks)
    stats = sampler.stats()
    assert (stats["drop_pool_no_pair"], stats["drop_pool_candidates"], stats["fallback_negatives"]) == (1, 0, 3)


def test_too_short_a_curve_has_no_pair_and_a_small_gallery_repeats() -> None:
    cosines = [0.9, 0.95, 0.5, 0.2]  # two items after the target: one drop, no pair
    gallery = Gallery.from_raw(_spread(cosines), torch.zeros(4, dtype=torch.long))
    sampler = build_sampler("drop-pool", gallery)
    negatives, _ = _sample(sampler, gallery, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0]), 5)
    assert negatives.tolist()[0][:3] in ([2, 3, 1], [3, 2, 1]) and sorted(negatives.tolist()[0][:3]) == [1, 2, 3]
    assert negatives.tolist()[0][3:] == negatives.tolist()[0][:2]
    assert sampler.stats()["drop_pool_no_pair"] == 1 and sampler.stats()["fallback_negatives"] == 5


def test_drop_pair_on_tensors() -> None:
    curve = torch.tensor([[0.9, 0.89, 0.6, 0.59, 0.58, 0.2, 0.19], [0.9, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0]])
    valid = torch.tensor([[True] * 7, [True, True, True, False, False, False, False]])
    i1, i2, found = drop_pair(curve, valid, 1)
    assert found.tolist() == [True, False] and (i1[0].item(), i2[0].item()) == (1, 4)


def test_a_duplicate_inside_the_pool_band_is_guarded_and_counted() -> None:
    # Query q = (0.95, 0, -0.312): target p = e1 (cosine 0.95); its near-duplicate n (cosine 0.99 with p) has
    # cosine 0.896 with q, inside the pool band [0.89, 0.90] between the drops after 0.92 and after 0.89.
    q = torch.tensor([0.95, 0.0, -(1 - 0.95 ** 2) ** 0.5])
    y = torch.tensor([0.0, 1.0, 0.0])
    others = [c * q + (1 - c * c) ** 0.5 * y for c in (0.93, 0.92, 0.90, 0.895, 0.89, 0.5, 0.49)]
    p, n = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.99, 0.0, (1 - 0.99 ** 2) ** 0.5])
    gallery = Gallery.from_raw(torch.stack([p, n, *others]), torch.zeros(9, dtype=torch.long))
    sampler = build_sampler("drop-pool", gallery)
    negatives, _ = _sample(sampler, gallery, q[None], torch.tensor([0]), 3)
    assert negatives.tolist() == [[4, 5, 6]]
    assert sampler.stats()["guard_near_duplicates"] == 1 and sampler.stats()["guard_exact_duplicates"] == 0


def test_refuses_a_negative_threshold(gallery) -> None:
    with pytest.raises(ConfigError, match="consecutive_threshold must be non-negative"):
        build_sampler("drop-pool", gallery, consecutive_threshold=-1)
