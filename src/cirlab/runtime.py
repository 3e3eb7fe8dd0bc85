"""Process-level runtime: device choice, mixed precision and seeding.

Shared by every command that runs a model, so that ``--device`` and ``--precision`` behave the same
everywhere. Running as one of several processes is :mod:`cirlab.distributed`'s job.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from cirlab.errors import ConfigError

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


def resolve_device(device: str | None = "auto") -> torch.device:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; otherwise the named device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available")
    return torch.device(device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` (``fp32`` is a no-op; fp16 on CPU is refused)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {list(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("fp16 autocast needs a GPU; use bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
