"""What every loss returns, the loss registry, and :func:`build_loss`.

All losses share one call signature, so that the trainer can swap them by name::

    output = loss(queries, positives, negatives)   # [B, d], [B, d], [B, k, d] or None
    output.loss.backward()
    log(output.stats)                              # active_fraction, mean_d_pos, mean_d_neg, ...
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cirlab.errors import ConfigError
from cirlab.registry import Registry

#: Loss classes by name (``triplet``, ``contrastive``); :func:`build_loss` instantiates them.
LOSSES: Registry[type[nn.Module]] = Registry("loss")


@dataclass
class LossOutput:
    """A loss value and the statistics that explain it.

    ``stats`` always holds ``active_fraction`` (share of (anchor, negative) terms that contribute to the
    gradient, as each loss defines it), ``mean_d_pos`` and ``mean_d_neg`` (mean anchor–positive and
    anchor–negative distances under the loss's distance). Values are plain floats, ready to log.
    """

    loss: Tensor
    stats: dict[str, float] = field(default_factory=dict)


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """The loss registered as ``name``, built with ``kwargs`` (an unknown option is a ConfigError)."""
    factory = LOSSES.get(name)
    check_options(factory, f"loss {name!r}", kwargs)
    return factory(**kwargs)


def check_options(factory: Any, what: str, options: dict[str, Any]) -> None:
    """Raise a one-line ConfigError when ``options`` do not fit ``factory``'s signature."""
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as error:
        known = [p for p in inspect.signature(factory).parameters if p not in ("self", "args", "kwargs")]
        raise ConfigError(f"{what}: {error}; its options are: {', '.join(known) or 'none'}") from None


def batch_stats(**values: Tensor) -> dict[str, float]:
    """Detached scalar tensors → floats, read back from the device in one transfer."""
    names = list(values)
    stacked = torch.stack([values[name].detach().float().reshape(()) for name in names])
    return dict(zip(names, stacked.cpu().tolist()))


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
