"""Guarded draws by rank: category layout, the target skipped by construction, exact settlement."""

from __future__ import annotations

import torch

from cirlab.negatives import DuplicateGuard, Gallery
from cirlab.negatives.draw import ANY, OTHER, SAME, CategoryLayout, GuardedDraw

from .conftest import make_gallery


def test_layout_spans() -> None:
    layout = CategoryLayout(torch.tensor([2, 0, 2, 1, 0, 2]))
    assert layout.order.tolist() == [1, 4, 3, 0, 2, 5]
    assert torch.equal(layout.order[layout.rank], torch.arange(6))
    start, end = layout.span(torch.tensor([0, 1, 2, 5]))
    assert start.tolist() == [0, 2, 3, 6] and end.tolist() == [2, 3, 6, 6]


def test_each_source_is_drawn_uniformly_without_the_target() -> None:
    categories = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    gallery = Gallery.from_raw(torch.eye(10), categories)
    draws = GuardedDraw(gallery, DuplicateGuard(gallery, None), chunk_size=4)
    generator = torch.Generator().manual_seed(0)
    positives = torch.full((3000,), 2)
    for source, allowed in ((SAME, {0, 1, 9}), (OTHER, {3, 4, 5, 6, 7, 8}), (ANY, set(range(10)) - {2})):
        sources = torch.full((3000, 1), source)
        result, exact, near = draws.draw(positives, categories[positives], sources, generator)
        counts = torch.bincount(result.negatives.flatten(), minlength=10)
        assert set(counts.nonzero().flatten().tolist()) == allowed
        expected = 3000 / len(allowed)
        assert all(abs(counts[i].item() - expected) < 0.15 * expected for i in allowed)
        assert not result.fallback.any() and exact.sum() == near.sum() == 0


def test_a_target_outside_the_query_category_is_still_skipped() -> None:
    categories = torch.tensor([0, 0, 1, 1])
    gallery = Gallery.from_raw(torch.eye(4), categories)
    draws = GuardedDraw(gallery, DuplicateGuard(gallery, None), chunk_size=2)
    sources = torch.full((50, 2), OTHER)
    result, _, _ = draws.draw(torch.full((50,), 3), torch.zeros(50, dtype=torch.long), sources,
                              torch.Generator().manual_seed(1))
    assert set(result.negatives.flatten().tolist()) == {2}


def test_unresolved_slots_are_settled_exactly_and_counted() -> None:
    gallery = make_gallery(size=30, categories=1, exact_pairs=1)
    groups = gallery.duplicate_groups.clone()
    groups[:29] = 0  # all but item 29 are one image
    gallery = Gallery(gallery.features, gallery.categories, groups)
    draws = GuardedDraw(gallery, DuplicateGuard(gallery, None), chunk_size=8, max_redraws=0)
    sources = torch.full((4, 3), ANY)
    result, exact, _ = draws.draw(torch.tensor([0, 5, 10, 20]), torch.zeros(4, dtype=torch.long), sources,
                                  torch.Generator().manual_seed(2))
    assert result.negatives.eq(29).all()
    assert torch.equal(result.fallback, exact > 0)
