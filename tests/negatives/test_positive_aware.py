"""``positive-aware``: the TopK-PercPos / TopK-MarginPos picks of a naive loop, the fallback, the guard, the ledger."""

from __future__ import annotations

from unittest.mock import patch

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, Gallery, PositiveAwareSampler, build_sampler

from .conftest import make_gallery, near_target_queries
from .naive import admissible_ranking, assert_guarded_and_ledgered, cosine


def _sample(sampler, gallery, queries, positives, k, seed=0):
    batch = BatchInfo(categories=gallery.categories[positives])
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed)), batch


def _spread(cosines):
    """Unit vectors with the given cosines with the query (1, 0, 0), in different directions (no near-duplicates)."""
    angles = torch.arange(len(cosines)) * (2 * torch.pi / len(cosines))
    c = torch.tensor(cosines)
    s = (1 - c * c).sqrt()
    return torch.stack([c, s * angles.cos(), s * angles.sin()], dim=1)


def _naive(gallery, query, target, k, tau=0.95, margin=None):
    """(picks, qualifying count) by the rule's definition: the k most similar admissible items below the threshold,
    then the least similar admissible items at or above it."""
    positive = cosine(gallery, query, target)
    threshold = positive - abs(positive) * (1 - tau) if margin is None else positive - margin
    threshold = min(threshold, positive - 1e-5)
    ranking = admissible_ranking(gallery, query, target)
    below = [j for j in ranking if cosine(gallery, query, j) < threshold]
    above = [j for j in ranking if cosine(gallery, query, j) >= threshold]
    return (below + above[::-1])[:k], len(below)


@pytest.mark.parametrize("chunk_size", [1000, 64, 7])
@pytest.mark.parametrize(("tau", "margin"), [(0.95, None), (0.8, None), (0.95, 0.05), (0.95, 0.3)])
def test_returns_the_naive_loops_picks(gallery, chunk_size: int, tau: float, margin: float | None) -> None:
    positives = torch.tensor([0, 1, 10, 11, 40, 200, 299])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=1)
    sampler = build_sampler("positive-aware", gallery, tau=tau, margin=margin, chunk_size=chunk_size)
    negatives, batch = _sample(sampler, gallery, queries, positives, 8)
    fallback = 0
    for row, target in enumerate(positives.tolist()):
        picks, qualifying = _naive(gallery, queries[row], target, 8, tau, margin)
        assert negatives[row].tolist() == picks
        fallback += max(0, 8 - qualifying)
    assert sampler.stats()["fallback_negatives"] == fallback
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


def test_the_rule_on_a_hand_made_gallery() -> None:
    # Cosines with the query (1, 0, 0): target 0.9, then 0.88, 0.86 (above 0.95 * 0.9 = 0.855), 0.85, 0.5, -0.2.
    gallery = Gallery.from_raw(_spread([0.9, 0.88, 0.86, 0.85, 0.5, -0.2]), torch.zeros(6, dtype=torch.long))
    query, target = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0])
    sampler = build_sampler("positive-aware", gallery)
    assert _sample(sampler, gallery, query, target, 3)[0].tolist() == [[3, 4, 5]]
    assert sampler.stats()["positive_aware_skipped"] == 2  # items 1 and 2: too close to the positive
    # TopK-MarginPos with margin 0.3: below 0.6 only; then the least similar of those refused (0.85, 0.86, ...).
    assert _sample(build_sampler("positive-aware", gallery, margin=0.3), gallery, query, target, 4)[0].tolist() == \
        [[4, 5, 3, 2]]


def test_a_negative_positive_score_never_admits_items_closer_than_the_target() -> None:
    # Positive cosine -0.5: tau * s_p = -0.475 would admit -0.49 (closer than the target); s_p - |s_p| (1 - tau)
    # = -0.525 does not.
    gallery = Gallery.from_raw(_spread([-0.5, -0.49, -0.6, -0.9]), torch.zeros(4, dtype=torch.long))
    negatives, _ = _sample(build_sampler("positive-aware", gallery), gallery, torch.tensor([[1.0, 0.0, 0.0]]),
                           torch.tensor([0]), 2)
    assert negatives.tolist() == [[2, 3]]


def test_a_near_duplicate_that_qualifies_is_guarded_and_counted() -> None:
    # Target p = e1 and its near-duplicate n (cosine 0.985 with p); the query sees p at 0.9 and n at 0.811, below
    # the rule's threshold 0.855: only the guard keeps n out.
    p = [1.0, 0.0, 0.0]
    n = [0.985, (1 - 0.985 ** 2) ** 0.5, 0.0]
    others = [[0.3, -0.5, 0.8], [0.1, 0.2, -0.9], [-0.4, 0.1, 0.3]]
    gallery = Gallery.from_raw(torch.tensor([p, n, *others]), torch.zeros(5, dtype=torch.long))
    query = torch.tensor([[0.9, -(1 - 0.81) ** 0.5, 0.0]])
    sampler = build_sampler("positive-aware", gallery)
    negatives, _ = _sample(sampler, gallery, query, torch.tensor([0]), 2)
    assert 1 not in negatives.tolist()[0]
    assert sampler.stats()["guard_near_duplicates"] == 1 and sampler.stats()["guard_exact_duplicates"] == 0
    unguarded = build_sampler("positive-aware", gallery, near_duplicate_threshold=None)
    assert _sample(unguarded, gallery, query, torch.tensor([0]), 2)[0].tolist()[0][0] == 1


def test_small_gallery_repeats_and_counts() -> None:
    gallery = make_gallery(size=4, exact_pairs=1)  # target 0: items 2 and 3 admissible
    sampler = build_sampler("positive-aware", gallery)
    negatives, _ = _sample(sampler, gallery, gallery.features[:1], torch.tensor([0]), 5)
    assert set(negatives.flatten().tolist()) == {2, 3} and sampler.stats()["fallback_negatives"] == 5 - \
        sum(cosine(gallery, gallery.features[0], j) < 0.95 * cosine(gallery, gallery.features[0], 0) for j in (2, 3))


def test_more_duplicates_than_the_slack_are_rescanned() -> None:
    gallery = make_gallery(size=300, dim=8, seed=4)
    features, groups = gallery.features.clone(), gallery.duplicate_groups.clone()
    # 150 slightly different copies of item 0 (one duplicate group): most of query 0's closest qualifying items.
    noise = torch.randn(150, 8, generator=torch.Generator().manual_seed(0))
    features[1:151] = torch.nn.functional.normalize(features[0] + 0.1 * noise, dim=1)
    groups[:151] = 0
    gallery = Gallery(features, gallery.categories, groups)
    positives = torch.tensor([0, 150])
    queries = near_target_queries(gallery, positives, noise=0.1, seed=5)
    sampler = build_sampler("positive-aware", gallery, tau=0.99, chunk_size=64)
    with patch.object(PositiveAwareSampler, "_guarded_top", wraps=sampler._guarded_top) as rescan:
        negatives, batch = _sample(sampler, gallery, queries, positives, 6)
    assert rescan.call_count == 1 and rescan.call_args.kwargs["below_threshold"]
    exact = 0
    for row, target in enumerate(positives.tolist()):
        assert negatives[row].tolist() == _naive(gallery, queries[row], target, 6, tau=0.99)[0]
        positive = cosine(gallery, queries[row], target)
        everything = sorted((j for j in range(300) if j != target), key=lambda j: -cosine(gallery, queries[row], j))
        qualifying = [j for j in everything if cosine(gallery, queries[row], j) < positive - abs(positive) * 0.01]
        exact += sum(groups[target] >= 0 and groups[j] == groups[target] for j in qualifying[:6])
    assert sampler.stats()["guard_exact_duplicates"] == exact >= 5
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


@pytest.mark.parametrize(("options", "match"), [
    ({"tau": 0.0}, "tau must lie in"), ({"tau": 1.5}, "tau must lie in"), ({"margin": -0.1}, "margin must be"),
])
def test_refuses_bad_options(gallery, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sampler("positive-aware", gallery, **options)
