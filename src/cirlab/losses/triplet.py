"""Triplet margin loss over mined negatives: ``max(0, margin + d(q, p) - d(q, n))``.

Each anchor (query) has its own positive and its own ``k`` negatives, so the loss has ``B * k`` terms.
The formula and the two reductions are those of pytorch-metric-learning's ``TripletMarginLoss`` with a
``MeanReducer`` (``reduction="mean"``) or its default ``AvgNonZeroReducer`` (``reduction="nonzero"``);
the tests check the equality. It is written out here because pytorch-metric-learning's losses take a
labelled batch or index tuples into one reference set, and would compute a ``[B, B(k + 1)]`` distance
matrix to read the ``B * k`` entries that per-anchor negatives need.

Without mined negatives (``negatives=None``) every other target of the batch is a negative of each
anchor (the batch-all strategy), so the loss works with in-batch training too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from cirlab.distances import Distance, build_distance
from cirlab.errors import ConfigError
from cirlab.losses.base import LOSSES, Loss, LossOutput, batch_stats, check_inputs, in_batch_negatives

REDUCTIONS: tuple[str, ...] = ("mean", "nonzero")


@LOSSES.register("triplet")
class TripletLoss(Loss):
    """Triplet margin loss with an injected distance.

    Args:
        margin: required gap between the anchor–negative and anchor–positive distances.
        distance: ``"cosine"`` (1 - cos, the default), ``"euclidean"``, a config dict, or a
            :class:`~cirlab.distances.Distance`. Both built-in distances normalise their inputs.
        reduction: ``"mean"`` averages all ``B * k`` terms; ``"nonzero"`` averages only the terms with
            a non-zero loss (so that easy negatives do not dilute the gradient as training advances).
    """

    def __init__(self, margin: float = 0.2, distance: str | dict[str, Any] | Distance = "cosine",
                 reduction: str = "mean") -> None:
        super().__init__()
        if margin < 0:
            raise ConfigError(f"triplet loss: margin must not be negative, got {margin}")
        if reduction not in REDUCTIONS:
            raise ConfigError(f"triplet loss: unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
        self.margin = float(margin)
        self.distance = build_distance(distance)
        self.reduction = reduction

    def forward(self, queries: Tensor, positives: Tensor, negatives: Tensor | None = None) -> LossOutput:
        """Loss of ``queries`` [B, d] against ``positives`` [B, d] and ``negatives`` [B, k, d] (or in-batch)."""
        check_inputs(queries, positives, negatives)
        if negatives is None:
            negatives = in_batch_negatives(positives)
        d_pos = self.distance.pairwise(queries, positives)  # [B]
        d_neg = self.distance.pairwise(queries[:, None, :], negatives)  # [B, k]
        terms = torch.relu(self.margin + d_pos[:, None] - d_neg)
        active = terms > 0
        # "nonzero" is AvgNonZeroReducer: the mean over active terms, 0 (with a gradient path) when none is.
        loss = terms.mean() if self.reduction == "mean" else terms.sum() / active.sum().clamp(min=1)
        stats = batch_stats(active_fraction=active.float().mean(), mean_d_pos=d_pos.mean(),
                            mean_d_neg=d_neg.mean())
        return LossOutput(loss=loss, stats=stats)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance.registry_name}, reduction={self.reduction}"
