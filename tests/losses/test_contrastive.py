"""Contrastive (CLIP4Cir) loss: hand-computed values, a naive softmax loop, mined columns and statistics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cirlab.errors import ConfigError
from cirlab.losses import ContrastiveLoss


def _naive(queries, positives, negatives, scale, active_ratio):
    """Per-row softmax cross-entropy written out; returns (loss, active_fraction, mean_d_pos, mean_d_neg)."""
    q = [F.normalize(row, dim=0) for row in queries]
    t = [F.normalize(row, dim=0) for row in positives]
    losses, active, d_pos, d_neg = [], [], [], []
    for i in range(len(q)):
        cosines = [float(q[i] @ t[j]) for j in range(len(t))]
        if negatives is not None:
            cosines += [float(q[i] @ F.normalize(n, dim=0)) for n in negatives[i]]
        logits = [scale * c for c in cosines]
        losses.append(-logits[i] + math.log(sum(math.exp(v) for v in logits)))
        d_pos.append(1 - cosines[i])
        for j, c in enumerate(cosines):
            if j != i:
                d_neg.append(1 - c)
                active.append(scale * (c - cosines[i]) >= math.log(active_ratio))
    return sum(losses) / len(losses), sum(active) / len(active), sum(d_pos) / len(d_pos), sum(d_neg) / len(d_neg)


def test_hand_computed_values_scale_one() -> None:
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)
    # row 0 logits [1, c] label 0; row 1 logits [0, c] label 1
    expected = (-(1 - math.log(math.e + math.exp(c))) - (c - math.log(1 + math.exp(c)))) / 2
    output = ContrastiveLoss(logit_scale=1.0)(queries, targets)
    assert output.loss.item() == pytest.approx(expected, abs=1e-6)
    assert output.stats["mean_d_pos"] == pytest.approx(((1 - 1) + (1 - c)) / 2, abs=1e-6)
    assert output.stats["mean_d_neg"] == pytest.approx(((1 - c) + (1 - 0)) / 2, abs=1e-6)


def test_hand_computed_with_one_mined_negative() -> None:
    queries = torch.tensor([[1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0]])
    negatives = torch.tensor([[[0.0, 1.0]]])  # cosine 0
    output = ContrastiveLoss(logit_scale=2.0)(queries, targets, negatives)
    assert output.loss.item() == pytest.approx(-2.0 + math.log(math.exp(2.0) + 1.0), abs=1e-6)
    # gap = 2 * (0 - 1) = -2 >= ln(0.01): the negative still counts as active
    assert output.stats["active_fraction"] == 1.0


@pytest.mark.parametrize("with_negatives", [False, True])
@pytest.mark.parametrize("scale", [100.0, 10.0])
def test_matches_a_naive_loop(with_negatives: bool, scale: float) -> None:
    generator = torch.Generator().manual_seed(7)
    queries = torch.randn(5, 8, generator=generator)
    positives = queries + 0.7 * torch.randn(5, 8, generator=generator)
    negatives = torch.randn(5, 3, 8, generator=generator) if with_negatives else None
    output = ContrastiveLoss(logit_scale=scale)(queries, positives, negatives)
    loss, active, d_pos, d_neg = _naive(queries, positives, negatives, scale, 0.01)
    assert output.loss.item() == pytest.approx(loss, rel=1e-5, abs=1e-5)
    assert output.stats == pytest.approx({"active_fraction": active, "mean_d_pos": d_pos, "mean_d_neg": d_neg},
                                         abs=1e-5)


def test_without_negatives_is_clip4cir_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(9)
    queries, targets = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    logits = 100 * F.normalize(queries, dim=-1) @ F.normalize(targets, dim=-1).T
    expected = F.cross_entropy(logits, torch.arange(6))
    assert ContrastiveLoss()(queries, targets).loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_refuses_bad_options() -> None:
    with pytest.raises(ConfigError, match="logit_scale must be positive"):
        ContrastiveLoss(logit_scale=0)
    with pytest.raises(ConfigError, match="active_ratio"):
        ContrastiveLoss(active_ratio=2.0)


@pytest.mark.parametrize("with_negatives", [False, True])
def test_rows_with_the_other_targets_are_the_whole_batch_loss(with_negatives: bool) -> None:
    """Under a gathered batch each process scores its rows against every target: the mean of the two halves'
    losses is the whole batch's loss, and so are the statistics."""
    generator = torch.Generator().manual_seed(5)
    queries = torch.randn(8, 6, generator=generator)
    positives = queries + 0.5 * torch.randn(8, 6, generator=generator)
    negatives = torch.randn(8, 2, 6, generator=generator) if with_negatives else None
    loss = ContrastiveLoss(logit_scale=20.0)
    whole = loss(queries, positives, negatives)
    halves = [loss(queries[rows], positives[rows], None if negatives is None else negatives[rows],
                   other_targets=positives[other])
              for rows, other in ((slice(0, 4), slice(4, 8)), (slice(4, 8), slice(0, 4)))]
    assert (halves[0].loss.item() + halves[1].loss.item()) / 2 == pytest.approx(whole.loss.item(), rel=1e-6)
    for key, value in whole.stats.items():
        assert float((halves[0].stats[key] + halves[1].stats[key]) / 2) == pytest.approx(float(value), abs=1e-6), key


def test_refuses_badly_shaped_other_targets() -> None:
    with pytest.raises(ValueError, match="other_targets must be"):
        ContrastiveLoss()(torch.zeros(3, 4), torch.zeros(3, 4), None, other_targets=torch.zeros(2, 5))
