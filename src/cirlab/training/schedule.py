"""Learning-rate schedules: linear warm-up, then cosine decay or a constant rate.

The factor is a pure function of the step, so the schedule resumes exactly from a checkpoint's step
and an extended run (more epochs on ``--resume``) stretches the cosine over the new length.
"""

from __future__ import annotations

import functools
import math

import torch


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, schedule: str,
                    min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :func:`lr_factor` (its state holds only the step count)."""
    factor = functools.partial(lr_factor, total_steps=total_steps, warmup_steps=warmup_steps, schedule=schedule,
                               min_lr_ratio=min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
