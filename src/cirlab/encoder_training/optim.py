"""AdamW with the CLIP parameter grouping, and a cosine learning-rate schedule with linear warmup.

Following open_clip's trainer, gains, biases and the logit scale (every parameter with fewer than two
dimensions) get no weight decay. The schedule has the formula of ``open_clip_train.scheduler.cosine_lr``
but is written as a :class:`~torch.optim.lr_scheduler.LambdaLR`: open_clip's version is a closure that
sets the rate by hand and has no state to checkpoint, while a torch scheduler is saved and restored with
the optimiser like any other.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def adamw(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.98),
          eps: float = 1e-6) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model``; 1-D parameters are excluded from weight decay."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps)


def cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step``: linear warmup from 1/warmup, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int,
                       total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Scheduler stepping :func:`cosine_factor` once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, warmup_steps, total_steps))


def default_warmup(total_steps: int) -> int:
    """Warmup length when none is given: 5% of the run, at least one step."""
    return max(1, round(0.05 * total_steps))
