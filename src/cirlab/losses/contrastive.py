"""CLIP4Cir's contrastive loss: cross-entropy of each query over the batch's targets.

``logits = logit_scale * normalize(queries) @ normalize(targets).T`` and the label of row ``i`` is
``i`` (its own target), exactly as CLIP4Cir's combiner training computes it (logit scale 100).

With mined negatives (``[B, k, d]``), row ``i`` gets ``k`` extra columns: the logits of its own
negatives. The softmax then runs over ``B + k`` candidates, so the contrastive loss can be driven by
the same samplers as the triplet loss and the two families compared.

Under ``torchrun`` the combiner objective passes ``other_targets``: the targets of the other processes'
slices of the global batch (gathered with :meth:`~cirlab.distributed.DistributedContext.gather_with_grad`).
They are more columns of every row, so each process computes its rows of the global batch's loss, the
local loss of open_clip's ``--gather-with-grad --local-loss``.

``active_fraction`` analogue: cross-entropy gives every negative a non-zero gradient, so "active"
needs a threshold. A (query, negative) pair is counted active when the negative's softmax weight is
at least ``active_ratio`` (default 1%) of the positive's, i.e. ``logit_neg >= logit_pos + ln(active_ratio)``.
That is the triplet rule ``s_neg > s_pos - margin`` with margin ``ln(1 / active_ratio) / logit_scale``
in cosine similarity (0.046 at the defaults), so the two families' figures read alike. The negatives
counted are the other targets of the batch and the mined ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.losses.base import LOSSES, Loss, LossOutput, batch_stats, check_inputs


@LOSSES.register("contrastive")
class ContrastiveLoss(Loss):
    """Batch cross-entropy with a fixed logit scale (CLIP4Cir), optionally with per-row mined negatives.

    Args:
        logit_scale: multiplier of the cosine similarities (CLIP4Cir: 100).
        active_ratio: threshold of the ``active_fraction`` statistic (see the module docstring).
    """

    scores_batch_targets = True

    def __init__(self, logit_scale: float = 100.0, active_ratio: float = 0.01) -> None:
        super().__init__()
        name = type(self).registry_name
        if logit_scale <= 0:
            raise ConfigError(f"{name} loss: logit_scale must be positive, got {logit_scale}")
        if not 0 < active_ratio <= 1:
            raise ConfigError(f"{name} loss: active_ratio must lie in (0, 1], got {active_ratio}")
        self.logit_scale = float(logit_scale)
        self.active_ratio = float(active_ratio)

    def forward(self, queries: Tensor, positives: Tensor, negatives: Tensor | None = None,
                other_targets: Tensor | None = None) -> LossOutput:
        """Loss of ``queries`` [B, d] against ``positives`` [B, d], optional ``negatives`` [B, k, d] and
        optional ``other_targets`` [M, d] (the rest of a global batch's targets, candidates of every row)."""
        check_inputs(queries, positives, negatives)
        if other_targets is not None and (other_targets.ndim != 2 or other_targets.shape[1] != queries.shape[1]):
            raise ValueError(f"other_targets must be [M, {queries.shape[1]}]; got {tuple(other_targets.shape)}")
        size = queries.shape[0]
        q = F.normalize(queries, dim=-1)
        targets = positives if other_targets is None else torch.cat([positives, other_targets])
        cosines = q @ F.normalize(targets, dim=-1).T  # [B, B + M]
        if negatives is not None:
            mined = torch.einsum("bd,bkd->bk", q, F.normalize(negatives, dim=-1))
            cosines = torch.cat([cosines, mined], dim=1)  # [B, B + M + k]
        labels = torch.arange(size, device=queries.device)
        loss = self.reduce(self.logit_scale * cosines, labels)

        with torch.no_grad():
            positive_cos = cosines[labels, labels]
            is_negative = torch.ones_like(cosines, dtype=torch.bool)
            is_negative[labels, labels] = False
            negative_cos = cosines[is_negative]
            gap = self.logit_scale * (cosines - positive_cos[:, None])
            active = (gap >= math.log(self.active_ratio))[is_negative]
            stats = batch_stats(
                active_fraction=active.float().mean() if active.numel() else cosines.new_tensor(float("nan")),
                mean_d_pos=(1.0 - positive_cos).mean(),
                mean_d_neg=(1.0 - negative_cos).mean() if negative_cos.numel() else cosines.new_tensor(float("nan")),
            )
        return LossOutput(loss=loss, stats=stats)

    def reduce(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The batch's loss from its logits ([B, C]; the positive of row ``i`` in column ``labels[i]``, every
        other column a negative): the mean softmax cross-entropy."""
        return F.cross_entropy(logits, labels)

    def extra_repr(self) -> str:
        return f"logit_scale={self.logit_scale}"
