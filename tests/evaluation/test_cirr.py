"""The CIRR validation protocol: reference removal, subset recall in the global order, ties, the headline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirlab.evaluation import build_protocol, evaluate_cache
from cirlab.evaluation.cirr import cirr_ranks
from cirlab.evaluation.recall import OUTSIDE_GALLERY, target_ranks

from .caches import cirr_cache, naive_cirr_ranks, naive_recall, sum_combine


def test_ranks_match_a_naive_loop_with_the_reference_removed_and_subsets_in_global_order(tmp_path):
    cache = cirr_cache(tmp_path)
    result = evaluate_cache(cache, sum_combine, show_progress=False)
    assert result.protocol == "cirr" and list(result.per_category) == ["all"]
    r = result.per_category["all"]
    naive = naive_cirr_ranks(cache)
    assert r.ranks.tolist() == [rank for rank, _ in naive]
    assert r.subset_ranks.tolist() == [subset for _, subset in naive]
    assert r.subset_sizes.tolist() == [5] * len(naive)
    for k in (1, 5, 10, 50):
        assert r.recall[k] == pytest.approx(naive_recall([rank for rank, _ in naive], k))
    for k in (1, 2, 3):
        assert r.subset_recall[k] == pytest.approx(naive_recall([subset for _, subset in naive], k))
    assert result.headline == pytest.approx((r.recall[5] + r.subset_recall[1]) / 2)
    assert result.metrics["Rs@1"] == r.subset_recall[1]
    table = result.format_table()
    assert "Rs@1" in table and "average of R@5 and Rs@1" in table and "reference removed" in table


def test_removing_the_reference_moves_every_target_behind_it_up_by_one():
    gallery = torch.nn.functional.normalize(torch.randn(12, 6), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(9, 6), dim=-1)
    targets = torch.arange(9) % 12
    references = (torch.arange(9) + 3) % 12
    kept = target_ranks(queries, gallery, targets)
    scores = queries @ gallery.T
    reference_before = (scores.gather(1, references[:, None]) > scores.gather(1, targets[:, None]))[:, 0]
    ranks, _ = cirr_ranks(queries, gallery, targets, references, torch.full((9, 0), -1))
    assert torch.equal(ranks, kept - reference_before.long())


def test_ties_follow_gallery_order_in_both_rankings():
    gallery = torch.nn.functional.normalize(torch.ones(5, 4), dim=-1)  # every score ties
    queries = torch.nn.functional.normalize(torch.ones(3, 4), dim=-1)
    targets = torch.tensor([3, 0, 4])
    references = torch.tensor([1, 2, -1])
    subsets = torch.tensor([[0, 3, 4], [0, 1, -1], [2, 3, 4]])
    ranks, subset_ranks = cirr_ranks(queries, gallery, targets, references, subsets)
    # query 0: gallery 0, 2 come before 3 once 1 is removed; within {0, 3, 4}, 0 comes first
    assert ranks.tolist() == [2, 0, 4] and subset_ranks.tolist() == [1, 0, 2]


def test_a_target_outside_the_gallery_or_its_subset_is_a_miss():
    gallery = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(2, 4), dim=-1)
    ranks, subset_ranks = cirr_ranks(queries, gallery, torch.tensor([-1, 2]), torch.tensor([0, 0]),
                                     torch.tensor([[1, 2], [1, 3]]))
    assert ranks[0] == OUTSIDE_GALLERY and subset_ranks.tolist() == [OUTSIDE_GALLERY, OUTSIDE_GALLERY]


def test_the_cache_chooses_the_protocol_and_a_test_split_without_targets_gets_the_submission_protocol(tmp_path):
    cache = cirr_cache(tmp_path)
    assert type(build_protocol(cache, "val")).registry_name == "cirr"
    assert type(build_protocol(cache, "test1")).registry_name == "cirr-submission"
    with pytest.raises(Exception, match="evaluates fashioniq caches"):
        build_protocol(cache, "val", "fashioniq")


def test_ranks_round_trip_with_their_subsets(tmp_path):
    from cirlab.compare.statistics import bootstrap, recalls
    from cirlab.evaluation.ranks import ranks_of, read_ranks, write_ranks

    cache = cirr_cache(tmp_path / "cache")
    result = evaluate_cache(cache, sum_combine, show_progress=False)
    write_ranks(tmp_path / "ranks.npz", {"val/epoch-0001": ranks_of(result)})
    back = read_ranks(tmp_path / "ranks.npz")["val/epoch-0001"]
    assert np.array_equal(back["all"].subset_ranks, result.per_category["all"].subset_ranks)
    headline = result.headline_metrics
    again = recalls(back, headline=headline)
    assert again.metrics["headline"] == result.headline and again.metrics["Rs@2"] == result.metrics["Rs@2"]
    estimate = bootstrap([back], metrics=("headline", "Rs@1"), draws=50, headline=headline).estimates
    assert estimate["headline"].observed == pytest.approx(result.headline)
