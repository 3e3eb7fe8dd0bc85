"""``semi-hard``: the window inequality on every pick, uniformity, chunking invariance, the fallback order."""

from __future__ import annotations

from unittest.mock import patch

import pytest
import torch

from cirlab.distances import EuclideanDistance
from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, Gallery, SemiHardSampler, build_sampler
from cirlab.negatives.window import TIE_TOLERANCE

from .conftest import make_gallery, naive_excluded, near_target_queries


def _sample(sampler, gallery, queries, positives, k, seed=0):
    batch = BatchInfo(categories=gallery.categories[positives])
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed))


def _naive_partition(gallery, query, target, margin, distance="cosine", guarded=True):
    """(window, beyond, closer) admissible items for one query, by an explicit loop."""

    def dist(cosine):
        return 1 - cosine if distance == "cosine" else max(2 - 2 * cosine, 0.0) ** 0.5

    target_cosine = float(query @ gallery.features[target])
    d_pos = dist(target_cosine)
    excluded = naive_excluded(gallery, target, 0.98) if guarded else {target}
    window, beyond, closer = set(), [], set()
    for j in range(len(gallery)):
        if j in excluded:
            continue
        cosine = float(query @ gallery.features[j])
        d = dist(cosine)
        if cosine < target_cosine - TIE_TOLERANCE and d < d_pos + margin:
            window.add(j)
        elif d >= d_pos + margin:
            beyond.append((d, j))
        else:
            closer.add(j)
    return window, [j for _, j in sorted(beyond)], closer


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_every_pick_is_semi_hard(gallery, distance: str) -> None:
    positives = torch.arange(0, 300, 25)
    queries = near_target_queries(gallery, positives, noise=0.25, seed=1)
    margin = 0.2 if distance == "cosine" else 0.3
    sampler = build_sampler("semi-hard", gallery, margin=margin, distance=distance)
    negatives = _sample(sampler, gallery, queries, positives, 6)
    candidates = 0
    for row, target in enumerate(positives.tolist()):
        window, _, _ = _naive_partition(gallery, queries[row], target, margin, distance)
        candidates += len(_naive_partition(gallery, queries[row], target, margin, distance, guarded=False)[0])
        assert len(window) >= 6
        assert set(negatives[row].tolist()) <= window and len(set(negatives[row].tolist())) == 6
    assert sampler.stats()["semi_hard_candidates"] == candidates
    assert sampler.stats()["fallback_negatives"] == 0


def test_chunked_and_unchunked_results_are_identical(gallery) -> None:
    positives = torch.arange(3, 300, 17)
    queries = near_target_queries(gallery, positives, noise=0.25, seed=2)
    results = [_sample(build_sampler("semi-hard", gallery, chunk_size=size), gallery, queries, positives, 5, seed=9)
               for size in (1000, 64, 29)]
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    assert not torch.equal(results[0], _sample(build_sampler("semi-hard", gallery), gallery, queries, positives, 5,
                                               seed=10))


def test_picks_are_uniform_over_the_window() -> None:
    gallery = make_gallery(size=200, dim=8, seed=3)
    positives = torch.tensor([17])
    queries = near_target_queries(gallery, positives, noise=0.2, seed=3)
    window, _, _ = _naive_partition(gallery, queries[0], 17, 0.2)
    assert len(window) >= 8
    # The same query 2000 times in one batch: each row draws with its own random keys.
    draws = _sample(build_sampler("semi-hard", gallery), gallery, queries.expand(2000, -1), positives.expand(2000),
                    3).flatten()
    counts = torch.bincount(draws, minlength=len(gallery)).float()
    assert set(counts.nonzero().flatten().tolist()) == window
    expected = len(draws) / len(window)
    assert counts[list(window)].min() > 0.5 * expected and counts[list(window)].max() < 1.6 * expected


def test_fallback_takes_the_window_then_the_hardest_beyond_then_closer_items(gallery) -> None:
    positives = torch.tensor([40, 41, 150])
    queries = near_target_queries(gallery, positives, noise=0.6, seed=4)
    margin, k = 0.02, 10  # a narrow window: few (if any) items qualify
    sampler = build_sampler("semi-hard", gallery, margin=margin, chunk_size=32)
    negatives = _sample(sampler, gallery, queries, positives, k)
    fallback = 0
    for row, target in enumerate(positives.tolist()):
        window, beyond, closer = _naive_partition(gallery, queries[row], target, margin)
        picks = negatives[row].tolist()
        taken_window = min(len(window), k)
        assert set(picks[:taken_window]) <= window
        rest = picks[taken_window:]
        from_beyond = min(len(beyond), k - taken_window)
        assert rest[:from_beyond] == beyond[:from_beyond]
        assert set(rest[from_beyond:]) <= closer
        fallback += k - taken_window
    assert fallback > 0 and sampler.stats()["fallback_negatives"] == fallback


def test_duplicates_in_the_window_are_guarded_and_counted(gallery) -> None:
    # A query placed so that the target's duplicate is just farther than the target: it would qualify.
    target, duplicate = 12, 13  # a near-duplicate pair (cosine ~0.9996)
    direction = gallery.features[target] - gallery.features[duplicate]
    query = torch.nn.functional.normalize(gallery.features[target] + 0.5 * direction, dim=0)[None]
    unguarded_window, _, _ = _naive_partition(gallery, query[0], target, 0.2, guarded=False)
    assert duplicate in unguarded_window
    k = len(unguarded_window)  # every window item would be picked, the duplicate included
    sampler = build_sampler("semi-hard", gallery)
    negatives = _sample(sampler, gallery, query, torch.tensor([target]), k)
    assert duplicate not in negatives.tolist()[0]
    assert sampler.stats()["guard_near_duplicates"] == 1 and sampler.stats()["fallback_negatives"] == 1
    unguarded = build_sampler("semi-hard", gallery, near_duplicate_threshold=None)
    assert duplicate in _sample(unguarded, gallery, query, torch.tensor([target]), k).tolist()[0]


def test_more_duplicates_than_the_slack_are_rescanned() -> None:
    # 200 slightly different copies of item 0 (one duplicate group, as re-encoded images are) fill the window
    # of a query near item 0; the other 200 items are spread out. The fast pass's short list then holds
    # almost only copies, and the query is scanned again with the guard on every item.
    gallery = make_gallery(size=400, dim=8, clusters=400, seed=5)
    features, groups = gallery.features.clone(), gallery.duplicate_groups.clone()
    noise = torch.randn(199, 8, generator=torch.Generator().manual_seed(0))
    features[1:200] = torch.nn.functional.normalize(features[0] + 0.02 * noise, dim=1)
    groups[:200] = 0
    gallery = Gallery(features, gallery.categories, groups)
    positives = torch.tensor([0])
    queries = near_target_queries(gallery, positives, noise=0.15, seed=6)
    window, beyond, _ = _naive_partition(gallery, queries[0], 0, 0.2)
    copies_in_window = len(_naive_partition(gallery, queries[0], 0, 0.2, guarded=False)[0]) - len(window)
    assert copies_in_window > 40 and 1 <= len(window) < 10
    sampler = build_sampler("semi-hard", gallery, chunk_size=50)
    with patch.object(SemiHardSampler, "_guarded_window", wraps=sampler._guarded_window) as rescan:
        negatives = _sample(sampler, gallery, queries, positives, 12)[0].tolist()
    assert rescan.call_count == 1
    assert set(negatives[:len(window)]) == window and negatives[len(window):] == beyond[:12 - len(window)]
    assert sampler.stats()["guard_exact_duplicates"] == 12 and sampler.stats()["fallback_negatives"] == 12 - len(window)


def test_distance_object_and_bad_margin(gallery) -> None:
    sampler = build_sampler("semi-hard", gallery, distance=EuclideanDistance())
    assert sampler.config()["distance"] == {"name": "euclidean", "normalize": True}
    with pytest.raises(ConfigError, match="margin must be positive"):
        build_sampler("semi-hard", gallery, margin=0)
