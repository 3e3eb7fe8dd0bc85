"""Hardness-weighted contrastive loss (HN-NCE): the contrastive loss with its negatives weighted by e^{β·s}.

For query ``i`` with logits ``s_ij = logit_scale * cos(q_i, t_j)``, positive ``p`` and negatives ``N_i`` (the
batch's other targets, then any mined negatives of the row)::

    loss_i = -s_ip + log(alpha * e^{s_ip} + sum_{j in N_i} w_ij * e^{s_ij})
    w_ij   = |N_i| * e^{beta * s_ij} / sum_{k in N_i} e^{beta * s_ik}

averaged over the rows. The weights average 1 over a row's negatives, so ``alpha = 1, beta = 0`` is the
contrastive loss exactly; ``beta > 0`` moves the weight to the negatives closest to the query, and
``alpha < 1`` lowers the positive's share of the denominator (``alpha = 0`` is the decoupled form). The
weights are not detached, as in the source.

Source: Radenovic et al., "Filtering, Distillation, and Hard Negatives for Vision-Language Pre-Training"
(CVPR 2023, arXiv 2301.02280), as CoVR uses it (Ventura et al., AAAI 2024): class ``HardNegativeNCE`` in
CoVR's ``src/model/loss.py``, with ``alpha: 1, beta: 0.5`` in ``configs/model/loss/hn_nce.yaml`` and the fixed
temperature 0.07 of ``src/model/blip_cir.py`` (hence the default ``logit_scale`` 1/0.07). Two differences:

* one direction, query → target, like cirlab's ``contrastive`` (CLIP4Cir's), so that mined negatives (a
  query's own) fit in; CoVR adds the same term in the target → query direction;
* each row's weights are normalised over that row's negatives, as the paper's ``w_ij`` are. CoVR's code
  divides the ``[B, B]`` matrix by the vector of row sums without ``keepdim``, which broadcasts along the
  columns, so its query → target weights of row ``i`` are divided by row ``j``'s sum (its target → query
  term, summed over columns, normalises as the paper does).

Computed in log space: ``log sum_j w_ij e^{s_ij} = log|N_i| + logsumexp_j((1 + beta) s_ij) - logsumexp_j(beta s_ij)``.
Under ``torchrun`` it gathers the batch's targets as the contrastive loss does; its statistics are the
contrastive loss's (the share of active pairs by the logit gap, unweighted).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.losses.base import LOSSES
from cirlab.losses.contrastive import ContrastiveLoss

#: CoVR's fixed temperature (``self.temp = 0.07``), as a logit scale.
COVR_LOGIT_SCALE = 1 / 0.07


@LOSSES.register("hn-nce")
class HardNegativeNCELoss(ContrastiveLoss):
    """The contrastive loss with hardness-weighted negatives (CoVR's defaults; see the module docstring).

    Args:
        logit_scale: multiplier of the cosine similarities (CoVR: 1 / 0.07).
        alpha: weight of the positive in the denominator (CoVR: 1).
        beta: concentration of the negatives' weights on the hardest, applied to the logits (CoVR: 0.5).
        active_ratio: threshold of the ``active_fraction`` statistic (as for ``contrastive``).
    """

    def __init__(self, logit_scale: float = COVR_LOGIT_SCALE, alpha: float = 1.0, beta: float = 0.5,
                 active_ratio: float = 0.01) -> None:
        super().__init__(logit_scale=logit_scale, active_ratio=active_ratio)
        if alpha < 0:
            raise ConfigError(f"hn-nce loss: alpha must not be negative, got {alpha}")
        if not math.isfinite(beta):
            raise ConfigError(f"hn-nce loss: beta must be a finite number, got {beta}")
        self.alpha, self.beta = float(alpha), float(beta)

    def reduce(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The mean over rows of ``loss_i`` (module docstring), from the logits and each row's positive column."""
        negatives = logits.shape[1] - 1
        if negatives < 1:
            raise ConfigError("hn-nce loss needs at least one negative per query; raise batch_size or mine negatives")
        is_positive = torch.zeros_like(logits, dtype=torch.bool)
        is_positive[torch.arange(logits.shape[0], device=logits.device), labels] = True
        positive = logits[is_positive]

        def negatives_logsumexp(scale: float) -> Tensor:
            return torch.logsumexp((scale * logits).masked_fill(is_positive, float("-inf")), dim=1)

        weighted = math.log(negatives) + negatives_logsumexp(1.0 + self.beta) - negatives_logsumexp(self.beta)
        log_alpha = math.log(self.alpha) if self.alpha > 0 else float("-inf")
        return (torch.logaddexp(positive + log_alpha, weighted) - positive).mean()

    def extra_repr(self) -> str:
        return f"logit_scale={self.logit_scale}, alpha={self.alpha}, beta={self.beta}"
