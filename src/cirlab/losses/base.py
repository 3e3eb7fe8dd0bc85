"""The loss contract, what every loss returns, the loss registry, and :func:`build_loss`.

All losses share one call signature, so that the trainer can swap them by name::

    output = loss(queries, positives, negatives)   # [B, d], [B, d], [B, k, d] or None
    output.loss.backward()
    log(output.stats)                              # the keys of type(loss).logged_stats

A loss that scores each query against every target of the batch (``scores_batch_targets``) also takes
``other_targets`` ([M, d]): under ``torchrun``, the targets of the other processes' slices of the global
batch, so that each process computes its rows of the loss of the whole global batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from cirlab.errors import ConfigError
from cirlab.registry import Registry

#: Statistics every built-in loss reports: the share of (anchor, negative) terms that contribute to the
#: gradient (as each loss defines it), and the mean anchor–positive and anchor–negative distances.
COMMON_STATS: tuple[str, ...] = ("active_fraction", "mean_d_pos", "mean_d_neg")


@dataclass
class LossOutput:
    """A loss value and the statistics that explain it (plain floats, ready to log).

    ``stats`` holds keys of the loss's :attr:`Loss.logged_stats` (for the built-in losses, all of
    :data:`COMMON_STATS`).
    """

    loss: Tensor
    stats: dict[str, Tensor] = field(default_factory=dict)  # detached 0-d tensors (see :func:`batch_stats`)


class Loss(nn.Module):
    """Base class of every loss: ``forward(queries [B, d], positives [B, d], negatives [B, k, d] | None)``.

    Subclasses return a :class:`LossOutput` whose ``stats`` keys are among :attr:`logged_stats`, which
    is what the trainer logs for this loss.
    """

    #: The name this class is registered under (set by :data:`LOSSES`).
    registry_name: ClassVar[str] = ""
    #: Keys that :attr:`LossOutput.stats` may hold.
    logged_stats: ClassVar[tuple[str, ...]] = COMMON_STATS
    #: Whether every target of the batch is a candidate of every query (the contrastive losses). Such a loss
    #: accepts ``other_targets`` ([M, d]): targets of the rest of the global batch, negatives of every row.
    scores_batch_targets: ClassVar[bool] = False

    def forward(self, queries: Tensor, positives: Tensor, negatives: Tensor | None = None) -> LossOutput:
        raise NotImplementedError


#: Loss classes by name (``triplet``, ``contrastive``, ``hn-nce``); :func:`build_loss` instantiates them.
LOSSES: Registry[type[Loss]] = Registry("loss")


def build_loss(name: str, **kwargs: Any) -> Loss:
    """The loss registered as ``name``, built with ``kwargs`` (an unknown option is a ConfigError)."""
    return LOSSES.build(name, **kwargs)


def batch_stats(**values: Tensor) -> dict[str, Tensor]:
    """Detached float32 scalar tensors, left on the device: the engine reads every statistic back in one transfer
    when it logs (:mod:`cirlab.engine.stats`), so a step never waits for the device."""
    return {name: value.detach().float().reshape(()) for name, value in values.items()}


def in_batch_negatives(targets: Tensor) -> Tensor:
    """``[B, d]`` targets → ``[B, B-1, d]``: for each row, every other row's target (batch order)."""
    size = targets.shape[0]
    if size < 2:
        raise ConfigError("in-batch negatives need at least 2 items per batch; raise batch_size or mine negatives")
    others = torch.arange(size - 1, device=targets.device).expand(size, -1)
    others = others + (others >= torch.arange(size, device=targets.device)[:, None]).long()
    return targets[others]


def check_inputs(queries: Tensor, positives: Tensor, negatives: Tensor | None) -> None:
    """Raise ValueError when the three inputs do not have the documented shapes."""
    if queries.ndim != 2 or positives.shape != queries.shape:
        raise ValueError(f"queries and positives must both be [B, d]; got {tuple(queries.shape)} and "
                         f"{tuple(positives.shape)}")
    if negatives is not None and (negatives.ndim != 3 or negatives.shape[0] != queries.shape[0]
                                  or negatives.shape[2] != queries.shape[1]):
        raise ValueError(f"negatives must be [B, k, d] = [{queries.shape[0]}, k, {queries.shape[1]}]; "
                         f"got {tuple(negatives.shape)}")
