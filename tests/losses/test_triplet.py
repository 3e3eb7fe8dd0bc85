"""Triplet loss: hand-computed values, a naive loop, pytorch-metric-learning's own loss, and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.reducers import AvgNonZeroReducer, MeanReducer

from cirlab.errors import ConfigError
from cirlab.losses import TripletLoss


def _naive(queries, positives, negatives, margin, distance, reduction):
    """Explicit loop over anchors and negatives; returns (loss, active_fraction, mean_d_pos, mean_d_neg)."""

    def dist(a, b):
        a, b = F.normalize(a, dim=0), F.normalize(b, dim=0)
        return 1 - float(a @ b) if distance == "cosine" else float((a - b).norm())

    terms, d_pos, d_neg = [], [], []
    for b in range(queries.shape[0]):
        dp = dist(queries[b], positives[b])
        d_pos.append(dp)
        for j in range(negatives.shape[1]):
            dn = dist(queries[b], negatives[b, j])
            d_neg.append(dn)
            terms.append(max(0.0, margin + dp - dn))
    nonzero = [t for t in terms if t > 0]
    loss = sum(terms) / len(terms) if reduction == "mean" else (sum(nonzero) / len(nonzero) if nonzero else 0.0)
    return loss, len(nonzero) / len(terms), sum(d_pos) / len(d_pos), sum(d_neg) / len(d_neg)


def test_hand_computed_values() -> None:
    queries = torch.tensor([[1.0, 0.0]])
    positives = torch.tensor([[0.6, 0.8]])  # cos 0.6 -> d_pos 0.4
    negatives = torch.tensor([[[0.0, 1.0], [0.8, 0.6]]])  # d 1.0 (easy) and 0.2 (violates)
    # terms: max(0, 0.2 + 0.4 - 1.0) = 0 and max(0, 0.2 + 0.4 - 0.2) = 0.4
    mean = TripletLoss(margin=0.2)(queries, positives, negatives)
    assert mean.loss.item() == pytest.approx(0.2)
    assert mean.stats == pytest.approx({"active_fraction": 0.5, "mean_d_pos": 0.4, "mean_d_neg": 0.6})
    assert TripletLoss(margin=0.2, reduction="nonzero")(queries, positives, negatives).loss.item() == \
        pytest.approx(0.4)


def test_hand_computed_euclidean() -> None:
    queries = torch.tensor([[2.0, 0.0]])
    positives = torch.tensor([[0.0, 3.0]])  # unit vectors at 90 degrees: sqrt(2)
    negatives = torch.tensor([[[-1.0, 0.0]]])  # opposite: 2
    output = TripletLoss(margin=1.0, distance="euclidean")(queries, positives, negatives)
    assert output.loss.item() == pytest.approx(1.0 + math.sqrt(2) - 2.0, abs=1e-5)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("reduction", ["mean", "nonzero"])
def test_matches_a_naive_loop(distance: str, reduction: str) -> None:
    generator = torch.Generator().manual_seed(3)
    queries = torch.randn(6, 8, generator=generator)
    positives = queries + 0.8 * torch.randn(6, 8, generator=generator)
    negatives = torch.randn(6, 5, 8, generator=generator)
    output = TripletLoss(margin=0.3, distance=distance, reduction=reduction)(queries, positives, negatives)
    loss, active, d_pos, d_neg = _naive(queries, positives, negatives, 0.3, distance, reduction)
    assert 0 < active < 1  # the data exercise both kinds of terms
    assert output.loss.item() == pytest.approx(loss, abs=1e-5)
    assert output.stats == pytest.approx({"active_fraction": active, "mean_d_pos": d_pos, "mean_d_neg": d_neg},
                                         abs=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "nonzero"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_equals_pytorch_metric_learning_triplet_loss(reduction: str, distance: str) -> None:
    generator = torch.Generator().manual_seed(4)
    batch, k, dim = 5, 3, 8
    queries = torch.randn(batch, dim, generator=generator)
    positives = queries + torch.randn(batch, dim, generator=generator)
    negatives = torch.randn(batch, k, dim, generator=generator)
    reference = torch.cat([positives, negatives.reshape(batch * k, dim)])
    anchors = torch.arange(batch).repeat_interleave(k)
    positive_idx = anchors.clone()
    negative_idx = batch + torch.arange(batch * k)
    pml = TripletMarginLoss(margin=0.2, distance=CosineSimilarity() if distance == "cosine" else LpDistance(),
                            reducer=MeanReducer() if reduction == "mean" else AvgNonZeroReducer())
    expected = pml(queries, indices_tuple=(anchors, positive_idx, negative_idx), ref_emb=reference)
    ours = TripletLoss(margin=0.2, distance=distance, reduction=reduction)(queries, positives, negatives)
    assert ours.loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_without_negatives_uses_the_other_targets() -> None:
    generator = torch.Generator().manual_seed(5)
    queries, positives = torch.randn(4, 6, generator=generator), torch.randn(4, 6, generator=generator)
    explicit = torch.stack([torch.stack([positives[j] for j in range(4) if j != i]) for i in range(4)])
    loss = TripletLoss(margin=0.5)
    assert loss(queries, positives, None).loss.item() == pytest.approx(loss(queries, positives, explicit).loss.item())


def test_nonzero_reduction_is_zero_when_every_term_is_satisfied() -> None:
    queries = torch.tensor([[1.0, 0.0]], requires_grad=True)
    output = TripletLoss(margin=0.1, reduction="nonzero")(queries, torch.tensor([[1.0, 0.0]]),
                                                          torch.tensor([[[-1.0, 0.0]]]))
    assert output.loss.item() == 0.0 and output.stats["active_fraction"] == 0.0
    output.loss.backward()
    assert torch.equal(queries.grad, torch.zeros_like(queries))


def test_gradients_reach_the_queries() -> None:
    generator = torch.Generator().manual_seed(6)
    queries = torch.randn(3, 4, generator=generator, requires_grad=True)
    positives = torch.randn(3, 4, generator=generator)
    negatives = positives[:, None, :] + 0.01 * torch.randn(3, 2, 4, generator=generator)  # every term active
    TripletLoss(margin=0.5)(queries, positives, negatives).loss.backward()
    assert queries.grad is not None and queries.grad.abs().sum() > 0


def test_refuses_bad_options() -> None:
    with pytest.raises(ConfigError, match="margin must not be negative"):
        TripletLoss(margin=-0.1)
    with pytest.raises(ConfigError, match="unknown reduction 'sum'"):
        TripletLoss(reduction="sum")
    with pytest.raises(ConfigError, match="unknown distance"):
        TripletLoss(distance="dot")
