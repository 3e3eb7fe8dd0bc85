"""``composition``: the reference, its other targets, its near-duplicates, in order, guarded; then the fill."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import BatchInfo, Gallery, ReferenceTargets, build_sampler

from .conftest import make_gallery, naive_excluded, near_target_queries
from .naive import assert_guarded_and_ledgered, cosine


def _naive_candidates(gallery, query, target, reference, shared_targets, threshold=0.98):
    """(candidates, sources) of one query by the rule's definition, guarded, each item once."""
    if reference < 0:
        return [], []
    groups = gallery.duplicate_groups.tolist()
    shared = sorted(shared_targets, key=lambda j: (-cosine(gallery, query, j), j))
    similar = [j for j in range(len(gallery)) if j != reference and (
        (groups[reference] >= 0 and groups[j] == groups[reference])
        or float(gallery.features[j] @ gallery.features[reference]) > threshold)]
    similar.sort(key=lambda j: (-float(gallery.features[j] @ gallery.features[reference]), j))
    excluded = naive_excluded(gallery, target, 0.98)
    candidates, sources = [], []
    for source, items in enumerate(([reference], shared, similar)):
        for item in items:
            if item not in excluded and item not in candidates:
                candidates.append(item)
                sources.append(source)
    return candidates, sources


def _gallery_with_families() -> Gallery:
    """300 items with 5 exact pairs and 5 near pairs (0-9 exact, 10-19 near) plus a near-duplicate triple 30-32."""
    gallery = make_gallery(exact_pairs=5, near_pairs=5)
    features = gallery.features.clone()
    noise = torch.randn(2, gallery.dim, generator=torch.Generator().manual_seed(9))
    features[31:33] = torch.nn.functional.normalize(features[30] + 0.02 * noise, dim=1)
    return Gallery(features, gallery.categories, gallery.duplicate_groups)


def test_candidates_in_order_then_the_fill_from_the_triplet_table() -> None:
    gallery = _gallery_with_families()
    # Triplets (reference -> target): 30 -> 40, 30 -> 41, 30 -> 2, 0 -> 50, 12 -> 60, 12 -> 61, 12 -> 13.
    pairs = ReferenceTargets.from_pairs(torch.tensor([30, 30, 30, 0, 12, 12, 12, -1]),
                                        torch.tensor([40, 41, 2, 50, 60, 61, 13, 70]))
    gallery = Gallery(gallery.features, gallery.categories, gallery.duplicate_groups, pairs)
    positives = torch.tensor([40, 3, 50, 60, 13, 100])
    references = torch.tensor([30, 30, 0, 12, 12, -1])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=1)
    batch = BatchInfo(gallery.categories[positives], references=references)
    sampler = build_sampler("composition", gallery)
    negatives = sampler.sample(queries, positives, batch, 5, torch.Generator().manual_seed(0))
    table = {30: [40, 41, 2], 0: [50], 12: [60, 61, 13]}
    counts = [0, 0, 0]
    for row, (target, reference) in enumerate(zip(positives.tolist(), references.tolist())):
        candidates, sources = _naive_candidates(gallery, queries[row], target, reference, table.get(reference, []))
        picks = negatives[row].tolist()
        assert picks[:len(candidates)] == candidates[:5] and len(set(picks)) == 5
        for source in sources[:5]:
            counts[source] += 1
    # Query 1 (target 3) must not get 2, its target's exact copy: it is guarded; query 4 (target 13) not 12, its
    # target's near-duplicate, although 12 is its own reference.
    assert 2 not in negatives[1].tolist() and 12 not in negatives[4].tolist()
    stats = sampler.stats()
    assert [stats["from_reference"], stats["from_shared_reference"], stats["from_reference_near_duplicates"]] == counts
    assert stats["fallback_negatives"] == 30 - sum(counts)
    assert stats["guard_exact_duplicates"] == 1 and stats["guard_near_duplicates"] == 1
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)
    assert stats["ledger_reference"] >= stats["from_reference"] > 0


def test_without_a_table_the_batch_tells_which_queries_share_a_reference(gallery) -> None:
    positives = torch.tensor([40, 41, 42, 50, 51])
    references = torch.tensor([100, 100, 100, 101, -1])
    queries = near_target_queries(gallery, positives, noise=0.3, seed=2)
    batch = BatchInfo(gallery.categories[positives], references=references)
    sampler = build_sampler("composition", gallery, reference_threshold=None)
    negatives = sampler.sample(queries, positives, batch, 3, torch.Generator().manual_seed(0))
    for row in range(3):
        others = [t for t in (40, 41, 42) if t != positives[row]]
        others.sort(key=lambda j: -cosine(gallery, queries[row], j))
        assert negatives[row].tolist() == [100, *others]
    assert negatives[3].tolist()[0] == 101
    assert sampler.stats()["from_shared_reference"] == 6 and sampler.stats()["from_reference"] == 4


def test_without_references_every_negative_comes_from_the_fill(gallery) -> None:
    positives = torch.arange(0, 300, 29)
    queries = near_target_queries(gallery, positives, noise=0.3, seed=3)
    batch = BatchInfo(gallery.categories[positives])
    sampler = build_sampler("composition", gallery, fill="hard")
    negatives = sampler.sample(queries, positives, batch, 4, torch.Generator().manual_seed(0))
    expected = build_sampler("hard", gallery).sample(queries, positives, batch, 4, torch.Generator().manual_seed(0))
    assert torch.equal(negatives, expected)
    stats = sampler.stats()
    assert stats["fallback_negatives"] == negatives.numel() and stats["from_reference"] == 0


def test_the_fill_skips_what_the_composition_already_chose() -> None:
    gallery = make_gallery(size=10, dim=8, seed=5)
    positives, references = torch.tensor([0]), torch.tensor([1])
    queries = near_target_queries(gallery, positives, noise=0.2, seed=5)
    batch = BatchInfo(gallery.categories[positives], references=references)
    sampler = build_sampler("composition", gallery, fill="hard", reference_threshold=None)
    negatives = sampler.sample(queries, positives, batch, 9, torch.Generator().manual_seed(0))
    assert negatives[0, 0].item() == 1 and sorted(negatives[0].tolist()) == list(range(1, 10))
    assert_guarded_and_ledgered(sampler, gallery, queries, positives, batch, negatives)


def test_reference_targets_table(gallery) -> None:
    table = ReferenceTargets.from_pairs(torch.tensor([5, 3, 5, -1, 5, 3]), torch.tensor([9, 2, 7, 1, 9, 0]))
    assert table.references.tolist() == [3, 3, 5, 5] and table.targets.tolist() == [0, 2, 7, 9]
    targets, valid = table.lookup(torch.tensor([5, -1, 4, 3]))
    assert torch.where(valid, targets, -1).tolist() == [[7, 9], [-1, -1], [-1, -1], [0, 2]]
    with_table = Gallery(gallery.features, gallery.categories, gallery.duplicate_groups, table)
    assert torch.equal(with_table.to("cpu").reference_targets.targets, table.targets)
    with pytest.raises(ConfigError, match="reference_targets must name gallery items"):
        Gallery(gallery.features, gallery.categories, gallery.duplicate_groups,
                ReferenceTargets(torch.tensor([3]), torch.tensor([len(gallery)])))
    empty = ReferenceTargets.from_pairs(torch.tensor([-1]), torch.tensor([0]))
    assert len(empty) == 0 and empty.lookup(torch.tensor([2]))[0].shape == (1, 0)


def test_batch_select_keeps_the_rows_facts() -> None:
    batch = BatchInfo(torch.tensor([0, 1, 2]), progress=0.4, references=torch.tensor([5, -1, 7]))
    part = batch.select(torch.tensor([2, 0]))
    assert part.categories.tolist() == [2, 0] and part.references.tolist() == [7, 5] and part.progress == 0.4


@pytest.mark.parametrize(("options", "match"), [
    ({"reference_threshold": 1.5}, "reference_threshold must be a cosine"),
    ({"fill": "nothing"}, "unknown negative sampler 'nothing'"),
])
def test_refuses_bad_options(gallery, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_sampler("composition", gallery, **options)
