"""``category``: source ratios over many draws, small categories, one-category galleries."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, Gallery, build_sampler

from .conftest import make_gallery, naive_excluded, unit_queries


def _draw(sampler, gallery, positives, k, seed, categories=None):
    batch = BatchInfo(categories=gallery.categories[positives] if categories is None else categories)
    return sampler.sample(unit_queries(len(positives), gallery.dim, seed), positives, batch, k,
                          torch.Generator().manual_seed(seed))


def test_default_mixture_ratios_hold_over_many_draws(gallery) -> None:
    sampler = build_sampler("category", gallery)
    positives = torch.arange(len(gallery))
    negatives = _draw(sampler, gallery, positives, 40, seed=1)
    same = gallery.categories[negatives] == gallery.categories[positives][:, None]
    stats = sampler.stats()
    total = stats["negatives"]
    assert stats["from_same_category"] / total == pytest.approx(0.7, abs=0.01)
    assert stats["from_other_category"] / total == pytest.approx(0.2, abs=0.01)
    assert stats["from_anywhere"] / total == pytest.approx(0.1, abs=0.01)
    # Anywhere-draws land in the query's category with the category's share of the gallery.
    share = (gallery.categories[:, None] == gallery.categories[None, :]).float().mean()
    assert same.float().mean().item() == pytest.approx(0.7 + 0.1 * share.item(), abs=0.015)
    for row in range(0, len(gallery), 7):
        assert not naive_excluded(gallery, row, 0.98) & set(negatives[row].tolist())


@pytest.mark.parametrize(("ratios", "same_share"), [((1, 0, 0), 1.0), ((0, 1, 0), 0.0)])
def test_pure_sources(gallery, ratios, same_share) -> None:
    positives = torch.arange(0, len(gallery), 3)
    negatives = _draw(build_sampler("category", gallery, ratios=ratios), gallery, positives, 10, seed=2)
    same = gallery.categories[negatives] == gallery.categories[positives][:, None]
    assert same.float().mean().item() == same_share


def test_a_category_holding_only_the_target_widens_to_the_gallery() -> None:
    gallery = make_gallery(size=50, categories=2, exact_pairs=1)
    categories = gallery.categories.clone()
    categories[:2] = 7  # items 0 and 1 (exact duplicates) alone in category 7
    gallery = Gallery(gallery.features, categories, gallery.duplicate_groups)
    sampler = build_sampler("category", gallery, ratios=(1, 0, 0))
    negatives = _draw(sampler, gallery, torch.tensor([0, 1]), 5, seed=3)
    assert not set(negatives.flatten().tolist()) & {0, 1}
    assert sampler.stats()["category_fallback"] == 10 and sampler.stats()["from_anywhere"] == 10


def test_a_category_with_two_items_uses_the_other_one() -> None:
    gallery = make_gallery(size=50, categories=2)
    categories = gallery.categories.clone()
    categories[[3, 4]] = 9
    gallery = Gallery(gallery.features, categories, gallery.duplicate_groups)
    negatives = _draw(build_sampler("category", gallery, ratios=(1, 0, 0)), gallery, torch.tensor([3]), 6, seed=4)
    assert negatives.tolist() == [[4] * 6]


def test_one_category_gallery_and_unknown_query_category() -> None:
    gallery = make_gallery(size=40, categories=1)
    sampler = build_sampler("category", gallery, ratios=(0, 1, 0))
    negatives = _draw(sampler, gallery, torch.tensor([5, 6]), 8, seed=5)
    assert not (negatives == torch.tensor([[5], [6]])).any()
    assert sampler.stats()["category_fallback"] == 16
    sampler = build_sampler("category", gallery)
    negatives = _draw(sampler, gallery, torch.tensor([5]), 8, seed=6, categories=torch.tensor([42]))
    assert not (negatives == 5).any() and sampler.stats()["from_same_category"] == 0


def test_deterministic_given_the_seed(gallery) -> None:
    positives = torch.arange(0, 300, 11)
    first = _draw(build_sampler("category", gallery), gallery, positives, 7, seed=8)
    assert torch.equal(first, _draw(build_sampler("category", gallery, chunk_size=13), gallery, positives, 7, seed=8))


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.2, 0.0)])
def test_refuses_bad_ratios(gallery, ratios) -> None:
    with pytest.raises(ConfigError, match="ratios must be three non-negative numbers"):
        build_sampler("category", gallery, ratios=ratios)
