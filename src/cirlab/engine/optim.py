"""The optimiser and the learning-rate schedule of every training run.

AdamW over parameter groups, and one schedule: linear warm-up, then cosine decay (to a floor) or a
constant rate. The schedule's factor is a pure function of the step, so a run resumes exactly from a
checkpoint's step, and an extended run (more epochs on ``--resume``) stretches the cosine over the new
length. It is written as a :class:`~torch.optim.lr_scheduler.LambdaLR` rather than taken from
open_clip (whose ``cosine_lr`` is a closure that sets the rate by hand and has no state to checkpoint),
so that it is saved and restored with the optimiser like any torch scheduler.

AdamW runs as one fused kernel over all parameters wherever torch has one for their device and dtype
(CPU and CUDA for floating-point parameters), and as for-each (multi-tensor) updates elsewhere, instead
of torch's default per-parameter loop on the CPU: on CLIP4Cir's 59M-parameter combiner the fused update
takes about a fifth of the loop's time. The implementations differ only by float rounding. A resumed run
keeps the implementation its checkpoint records (torch restores the groups' ``fused`` and ``foreach`` flags
with the optimiser state), so a run checkpointed by an earlier version continues as it started.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

#: Learning-rate schedules after the warm-up.
SCHEDULES: tuple[str, ...] = ("cosine", "constant")


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str = "cosine",
              min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int,
                    schedule: str = "cosine", min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor` (its state holds only the step count)."""
    factor = functools.partial(lr_factor, total_steps=total_steps, warmup_steps=warmup_steps, schedule=schedule,
                               min_lr_ratio=min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def default_warmup(total_steps: int) -> int:
    """Warm-up length of encoder training when none is given: 5% of the run, at least one step."""
    return max(1, round(0.05 * total_steps))


def decay_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups as open_clip's trainer makes them: weight matrices decay, gains, biases and the logit
    scale (every trainable parameter with fewer than two dimensions) do not."""
    decay, no_decay = [], []
    for module in modules:
        for param in module.parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def uniform_groups(modules: Iterable[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """One parameter group of every trainable parameter, all with ``weight_decay``."""
    params = [p for module in modules for p in module.parameters() if p.requires_grad]
    return [{"params": params, "weight_decay": weight_decay}] if params else []


def fused_device_types() -> frozenset[str]:
    """Device types with a fused AdamW kernel in this torch (the CPU from torch 2.4 on)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # the list moved: CUDA has had a fused kernel longest
        return frozenset(("cuda",))
    return frozenset(_get_fused_kernels_supported_devices())


def implementation(params: Iterable[torch.Tensor]) -> dict[str, bool]:
    """AdamW's implementation flags for ``params``: ``{"fused": True}`` when every parameter is a floating-point
    tensor on a device type with a fused kernel, else ``{"foreach": True}``."""
    supported = fused_device_types()
    fused = all(p.is_floating_point() and p.device.type in supported for p in params)
    return {"fused": True, "foreach": False} if fused else {"fused": False, "foreach": True}


def build_optimizer(groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                    eps: float = 1e-8) -> torch.optim.AdamW | None:
    """AdamW over ``groups``, fused or for-each (:func:`implementation`); ``None`` when there is nothing to train."""
    if not groups:
        return None
    flags = implementation(p for group in groups for p in group["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **flags)

