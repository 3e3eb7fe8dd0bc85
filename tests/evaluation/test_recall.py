import pytest
import torch

from cirlab.evaluation import recall
from cirlab.evaluation.recall import OUTSIDE_GALLERY, all_finite, recall_at_k, recall_from_ranks, target_ranks


def naive_ranks(queries, gallery, targets):
    """Per-query loop: items scoring higher, plus equal items earlier in gallery order."""
    ranks = []
    for q, t in zip(queries, targets.tolist()):
        if not 0 <= t < len(gallery):
            ranks.append(OUTSIDE_GALLERY)
            continue
        scores = [float(torch.dot(q, g)) for g in gallery]
        ranks.append(sum(s > scores[t] for s in scores) + sum(scores[j] == scores[t] for j in range(t)))
    return ranks


def test_ranks_match_a_naive_loop_on_random_features():
    g = torch.Generator().manual_seed(0)
    queries, gallery = torch.randn(37, 16, generator=g), torch.randn(53, 16, generator=g)
    targets = torch.randint(0, 53, (37,), generator=g)
    assert target_ranks(queries, gallery, targets).tolist() == naive_ranks(queries, gallery, targets)


def test_exact_ties_are_broken_by_gallery_order():
    # Small integers: every score is exact whatever the summation order.
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    queries = torch.tensor([[1.0, 0.0]] * 3 + [[1.0, 1.0]] * 2)
    targets = torch.tensor([0, 2, 4, 1, 0])
    # Query 0: only item 3 scores higher. Query 1: item 3, plus the tie at 0. Query 2: item 3, ties at 0 and 2.
    # Queries 3 and 4 score (1, 1, 1, 2, 1): target 1 has item 3 above and item 0 tied before it; target 0 only item 3.
    expected = [1, 2, 3, 2, 1]
    assert naive_ranks(queries, gallery, targets) == expected
    assert target_ranks(queries, gallery, targets).tolist() == expected


def test_many_random_ties_match_the_naive_loop(monkeypatch):
    g = torch.Generator().manual_seed(1)
    queries = torch.randint(-2, 3, (40, 3), generator=g).float()
    gallery = torch.randint(-2, 3, (30, 3), generator=g).float()  # few distinct rows: ties everywhere
    targets = torch.randint(0, 30, (40,), generator=g)
    expected = naive_ranks(queries, gallery, targets)
    for chunk_size in (1, 7, 1024):
        assert target_ranks(queries, gallery, targets, chunk_size=chunk_size).tolist() == expected
    assert target_ranks(queries, gallery, targets, max_block_elements=45).tolist() == expected  # 1 query per block
    monkeypatch.setattr(recall, "CACHE_PIECE_ELEMENTS", 70)  # blocks of 7 queries compared in pieces of 2
    assert target_ranks(queries, gallery, targets, chunk_size=7).tolist() == expected


def test_targets_outside_the_gallery_are_misses_at_every_k():
    queries, gallery = torch.eye(3), torch.eye(3)
    targets = torch.tensor([0, -1, 3])
    ranks = target_ranks(queries, gallery, targets)
    assert ranks.tolist() == [0, OUTSIDE_GALLERY, OUTSIDE_GALLERY]
    assert recall_at_k(queries, gallery, targets, ks=(1, 100)) == pytest.approx({1: 100 / 3, 100: 100 / 3})


def test_recall_from_ranks_by_hand():
    ranks = torch.tensor([0, 1, 4, 5, 9, 10, 49, 50])
    assert recall_from_ranks(ranks, (1, 5, 10, 50)) == {1: 12.5, 5: 37.5, 10: 62.5, 50: 87.5}


def test_recall_at_k_matches_naive_counts():
    g = torch.Generator().manual_seed(2)
    queries, gallery = torch.randn(64, 8, generator=g), torch.randn(200, 8, generator=g)
    targets = torch.randint(0, 200, (64,), generator=g)
    naive = naive_ranks(queries, gallery, targets)
    result = recall_at_k(queries, gallery, targets, ks=(1, 5, 10, 50), chunk_size=16)
    assert result == {k: pytest.approx(100 * sum(r < k for r in naive) / 64) for k in (1, 5, 10, 50)}


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError, match="share d"):
        target_ranks(torch.zeros(2, 3), torch.zeros(4, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="target_indices"):
        target_ranks(torch.zeros(2, 3), torch.zeros(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="finite"):
        target_ranks(torch.full((2, 3), float("nan")), torch.zeros(4, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="positive"):
        recall_from_ranks(torch.tensor([0]), ks=(0,))
    with pytest.raises(ValueError, match="zero queries"):
        recall_from_ranks(torch.tensor([], dtype=torch.long))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_gallery_item_is_refused(bad):
    gallery = torch.randn(50, 4)
    gallery[37, 2] = bad
    with pytest.raises(ValueError, match="finite"):
        target_ranks(torch.randn(3, 4), gallery, torch.zeros(3, dtype=torch.long))


def test_all_finite_settles_an_overflowing_sum_elementwise():
    huge = torch.full((4, 3), 3e38)  # every element finite, their float32 sum infinite
    assert torch.isinf(huge.sum()) and all_finite(huge)
    assert all_finite(torch.full((4, 3), 60000.0, dtype=torch.float16))  # a float16 sum would overflow
    assert all_finite(torch.zeros(0, 3)) and all_finite(torch.arange(5))
    for bad in (float("nan"), float("inf"), float("-inf")):
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            values = torch.ones(7, 5, dtype=dtype)
            values[3, 4] = bad
            assert not all_finite(values)
    opposite = torch.tensor([float("inf"), float("-inf")])  # the sum is NaN, not a cancellation
    assert not all_finite(opposite)


def test_empty_gallery_ranks_every_target_outside():
    ranks = target_ranks(torch.zeros(2, 3), torch.zeros(0, 3), torch.tensor([0, -1]))
    assert ranks.tolist() == [OUTSIDE_GALLERY, OUTSIDE_GALLERY]
