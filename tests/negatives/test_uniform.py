"""``random``: uniform over the admissible gallery, never the target or its duplicates, deterministic."""

from __future__ import annotations

import torch

from cirlab.negatives import BatchInfo, build_sampler

from .conftest import make_gallery, naive_excluded, unit_queries


def _draw(sampler, gallery, positives, k, seed):
    queries = unit_queries(len(positives), gallery.dim, seed)
    batch = BatchInfo(categories=gallery.categories[positives])
    return sampler.sample(queries, positives, batch, k, torch.Generator().manual_seed(seed))


def test_never_returns_the_target_or_its_duplicates(gallery) -> None:
    sampler = build_sampler("random", gallery)
    positives = torch.tensor([0, 1, 2, 10, 11, 12, 150])
    negatives = _draw(sampler, gallery, positives, 400, seed=1)  # more draws than items: hits are certain
    for row, target in enumerate(positives.tolist()):
        excluded = naive_excluded(gallery, target, 0.98)
        assert not excluded & set(negatives[row].tolist())
    stats = sampler.stats()
    assert stats["guard_exact_duplicates"] > 0 and stats["guard_near_duplicates"] > 0
    assert stats["queries"] == 7 and stats["negatives"] == 7 * 400


def test_draws_are_uniform_over_the_admissible_items() -> None:
    gallery = make_gallery(size=20, exact_pairs=1)
    sampler = build_sampler("random", gallery)
    positives = torch.zeros(200, dtype=torch.long)  # target 0, its duplicate 1: 18 admissible items
    negatives = _draw(sampler, gallery, positives, 90, seed=2)
    counts = torch.bincount(negatives.flatten(), minlength=20)
    assert counts[:2].sum() == 0
    expected = negatives.numel() / 18
    assert ((counts[2:] - expected).abs() < 0.08 * expected).all()


def test_deterministic_and_chunk_independent(gallery) -> None:
    positives = torch.arange(0, 300, 13)
    first = _draw(build_sampler("random", gallery), gallery, positives, 9, seed=3)
    again = _draw(build_sampler("random", gallery, chunk_size=17), gallery, positives, 9, seed=3)
    other = _draw(build_sampler("random", gallery), gallery, positives, 9, seed=4)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_a_gallery_of_duplicates_falls_back_to_the_exact_scan() -> None:
    # Nine copies of one image and a single other item: redraws rarely find it, the exact scan always does.
    gallery = make_gallery(size=10, exact_pairs=0)
    features = gallery.features.clone()
    features[:9] = features[0]
    groups = torch.tensor([0] * 9 + [-1])
    gallery = type(gallery)(features, gallery.categories, groups)
    sampler = build_sampler("random", gallery, max_redraws=0)
    negatives = _draw(sampler, gallery, torch.tensor([0, 3, 9]), 4, seed=5)
    assert negatives[:2].eq(9).all() and not negatives[2].eq(9).any()
    assert sampler.stats()["fallback_negatives"] > 0


def test_every_blocked_draw_is_counted_once(gallery) -> None:
    """Without redraws, a draw the guard blocks is settled by the exact scan: blocked draws equal fallbacks."""
    sampler = build_sampler("random", gallery, max_redraws=0)
    positives = torch.tensor([0, 1, 2, 10, 11, 12, 150])
    negatives = _draw(sampler, gallery, positives, 300, seed=6)
    for row, target in enumerate(positives.tolist()):
        assert not naive_excluded(gallery, target, 0.98) & set(negatives[row].tolist())
    stats = sampler.stats()
    assert stats["guard_exact_duplicates"] > 0 and stats["guard_near_duplicates"] > 0
    assert stats["guard_exact_duplicates"] + stats["guard_near_duplicates"] == stats["fallback_negatives"]
