"""HN-NCE: CoVR's formula written out as a loop, gradients through the weights, and its limits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cirlab.errors import ConfigError
from cirlab.losses import ContrastiveLoss, HardNegativeNCELoss


def _covr_loop(queries, positives, negatives, scale, alpha, beta):
    """CoVR's HardNegativeNCE, query → target term, one row at a time in float64:
    ``-s_ii + log(alpha e^{s_ii} + sum_j w_ij e^{s_ij})``, ``w_ij = (N - 1) e^{beta s_ij} / sum_{k != i} e^{beta s_ik}``
    over the row's negatives (the batch's other targets, then its mined ones)."""
    q = [F.normalize(row.double(), dim=0) for row in queries]
    t = [F.normalize(row.double(), dim=0) for row in positives]
    losses = []
    for i in range(len(q)):
        s_pos = scale * float(q[i] @ t[i])
        s_neg = [scale * float(q[i] @ t[j]) for j in range(len(t)) if j != i]
        if negatives is not None:
            s_neg += [scale * float(q[i] @ F.normalize(n.double(), dim=0)) for n in negatives[i]]
        normaliser = sum(math.exp(beta * s) for s in s_neg)
        weights = [len(s_neg) * math.exp(beta * s) / normaliser for s in s_neg]
        denominator = alpha * math.exp(s_pos) + sum(w * math.exp(s) for w, s in zip(weights, s_neg))
        losses.append(math.log(denominator) - s_pos)
    return sum(losses) / len(losses)


def _inputs(seed: int, rows: int = 6, dim: int = 8, mined: int = 0):
    generator = torch.Generator().manual_seed(seed)
    queries = torch.randn(rows, dim, generator=generator)
    positives = queries + 0.8 * torch.randn(rows, dim, generator=generator)
    negatives = torch.randn(rows, mined, dim, generator=generator) if mined else None
    return queries, positives, negatives


@pytest.mark.parametrize("mined", [0, 3])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.5), (1.0, 2.0), (0.5, 0.5), (0.0, 1.0), (1.0, -0.5)])
def test_matches_covr_formula_written_as_a_loop(mined: int, alpha: float, beta: float) -> None:
    queries, positives, negatives = _inputs(3, mined=mined)
    loss = HardNegativeNCELoss(alpha=alpha, beta=beta)
    output = loss(queries, positives, negatives)
    expected = _covr_loop(queries, positives, negatives, 1 / 0.07, alpha, beta)
    assert output.loss.item() == pytest.approx(expected, rel=1e-5)


def test_defaults_are_covrs() -> None:
    loss = HardNegativeNCELoss()
    assert (loss.logit_scale, loss.alpha, loss.beta) == (pytest.approx(1 / 0.07), 1.0, 0.5)


def test_covr_vectorised_query_to_target_term_with_row_normalisation() -> None:
    """CoVR's matrix code for the query → target term, with each row's weights normalised over that row (the
    paper's ``w_ij``; ``keepdim=True`` where CoVR's row sums broadcast along the columns), is this loss."""
    queries, positives, _ = _inputs(5)
    sim = F.normalize(queries, dim=-1) @ F.normalize(positives, dim=-1).T / 0.07
    size, alpha, beta = sim.shape[0], 1.0, 0.5
    exp_beta = torch.exp(beta * sim)
    weights = (size - 1) * exp_beta / (exp_beta.sum(dim=1, keepdim=True) - torch.diagonal(exp_beta)[:, None])
    weights[range(size), range(size)] = alpha
    covr = (torch.log((torch.exp(sim) * weights).sum(dim=1)) - torch.diagonal(sim)).mean()
    assert HardNegativeNCELoss()(queries, positives).loss.item() == pytest.approx(covr.item(), rel=1e-5)


@pytest.mark.parametrize("mined", [0, 2])
def test_alpha_one_beta_zero_is_the_contrastive_loss(mined: int) -> None:
    queries, positives, negatives = _inputs(11, mined=mined)
    hn = HardNegativeNCELoss(logit_scale=100.0, alpha=1.0, beta=0.0)(queries, positives, negatives)
    plain = ContrastiveLoss(logit_scale=100.0)(queries, positives, negatives)
    assert hn.loss.item() == pytest.approx(plain.loss.item(), rel=1e-5)
    assert hn.stats == plain.stats


def test_gradient_flows_through_the_weights_as_in_the_formula() -> None:
    """The weights are not detached (as in CoVR): the gradient is the formula's, computed densely in float64."""
    queries, positives, negatives = _inputs(2, mined=2)
    queries.requires_grad_(True)
    HardNegativeNCELoss(beta=1.0)(queries, positives, negatives).loss.backward()

    reference = queries.detach().double().requires_grad_(True)
    q = F.normalize(reference, dim=-1)
    candidates = torch.cat([F.normalize(positives.double(), dim=-1)[None].expand(len(q), -1, -1),
                            F.normalize(negatives.double(), dim=-1)], dim=1)  # [B, B + k, d]
    s = torch.einsum("bd,bcd->bc", q, candidates) / 0.07
    is_negative = torch.ones_like(s, dtype=torch.bool)
    is_negative[range(len(q)), range(len(q))] = False
    s_pos, s_neg = torch.diagonal(s), s[is_negative].view(len(q), -1)
    weights = s_neg.shape[1] * torch.softmax(1.0 * s_neg, dim=1)
    loss = (torch.log(torch.exp(s_pos) + (weights * torch.exp(s_neg)).sum(dim=1)) - s_pos).mean()
    loss.backward()
    torch.testing.assert_close(queries.grad.double(), reference.grad, rtol=1e-4, atol=1e-6)


def test_higher_beta_puts_more_weight_on_hard_negatives() -> None:
    """One hard (cos 0.9) and one easy (cos -0.5) negative: raising beta raises the loss towards the hard one's."""
    queries = torch.tensor([[1.0, 0.0, 0.0]])
    positives = torch.tensor([[1.0, 0.0, 0.0]])
    negatives = torch.tensor([[[0.9, math.sqrt(1 - 0.81), 0.0], [-0.5, 0.0, math.sqrt(0.75)]]])
    losses = [HardNegativeNCELoss(beta=beta)(queries, positives, negatives).loss.item() for beta in (0.0, 0.5, 5.0)]
    assert losses[0] < losses[1] < losses[2]
    only_hard = -1 / 0.07 + math.log(math.exp(1 / 0.07) + 2 * math.exp(0.9 / 0.07))
    assert losses[2] == pytest.approx(only_hard, rel=1e-3)


@pytest.mark.parametrize("mined", [0, 2])
def test_rows_with_the_other_targets_are_the_whole_batch_loss(mined: int) -> None:
    """Each half of a batch, given the other half's targets, computes its rows of the whole batch's loss."""
    queries, positives, negatives = _inputs(4, rows=8, mined=mined)
    loss = HardNegativeNCELoss()
    whole = loss(queries, positives, negatives)
    halves = [loss(queries[rows], positives[rows], None if negatives is None else negatives[rows],
                   other_targets=positives[other])
              for rows, other in ((slice(0, 4), slice(4, 8)), (slice(4, 8), slice(0, 4)))]
    assert (halves[0].loss.item() + halves[1].loss.item()) / 2 == pytest.approx(whole.loss.item(), rel=1e-6)


def test_refuses_bad_options_and_a_row_without_negatives() -> None:
    with pytest.raises(ConfigError, match="hn-nce loss: alpha must not be negative"):
        HardNegativeNCELoss(alpha=-1.0)
    with pytest.raises(ConfigError, match="hn-nce loss: beta must be a finite number"):
        HardNegativeNCELoss(beta=float("inf"))
    with pytest.raises(ConfigError, match="hn-nce loss: logit_scale must be positive"):
        HardNegativeNCELoss(logit_scale=0.0)
    with pytest.raises(ConfigError, match="at least one negative per query"):
        HardNegativeNCELoss()(torch.randn(1, 4), torch.randn(1, 4))
