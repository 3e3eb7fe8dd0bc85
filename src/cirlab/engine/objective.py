"""What a training run plugs into the engine: the part that is specific to what is being learned.

The engine (:class:`~cirlab.engine.loop.Engine`) owns the loop, the optimiser and schedule, gradient
scaling and clipping, checkpoints with RNG states, the run log, resume and the reductions over
processes. An objective owns the model, the data order, the forward pass and loss, the evaluation and
how its weights are saved. Combiner training (:mod:`cirlab.training.objective`), encoder pretraining
and fine-tuning (:mod:`cirlab.encoder_training`) are objectives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn


@dataclass
class StepOutput:
    """What one forward pass gives the engine: the loss to minimise and the statistics to log.

    ``stats`` values are floats, tensors (averaged to one number) or durations timed on the device
    (:class:`cirlab.engine.stats.Stopwatch`); keys are among the objective's ``step_stats``. Leave tensors
    on the device: the engine reads every statistic back at its read-back points, so a step that calls
    ``float()`` or ``.item()`` makes the host wait for the device. A key ending in ``_time_s`` is a
    duration: its epoch mean is logged as ``time/mean_<name>_s``; every other key as ``train/<key>``.
    """

    loss: Tensor
    stats: dict[str, Any] = field(default_factory=dict)


class Objective(Protocol):
    """The contract between the engine and what it trains."""

    #: Statistics of a step, in the order of their ``steps.csv`` columns.
    step_stats: tuple[str, ...]
    #: The validation metric whose largest value picks the ``best/`` checkpoint; ``None``: no ``best/``.
    selection: str | None

    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch on this process."""
        ...

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """The optimiser's parameter groups (empty when nothing is trained)."""
        ...

    def train_modules(self) -> list[nn.Module]:
        """Modules put in training mode at the start of every epoch."""
        ...

    def generators(self) -> dict[str, torch.Generator]:
        """The objective's own random generators, whose states a checkpoint keeps."""
        ...

    def batches(self, epoch: int) -> Iterable[Any]:
        """This process's batches of ``epoch`` (1-based), produced lazily, in a reproducible order."""
        ...

    def step(self, batch: Any) -> StepOutput:
        """Forward ``batch`` and compute the loss (under the autocast the objective's precision asks for)."""
        ...

    def after_step(self) -> dict[str, Any]:
        """Adjust the model after an optimiser step (a clamp, say); return values to log with the step (floats
        or tensors, as :class:`StepOutput`'s statistics)."""
        ...

    def epoch_stats(self) -> dict[str, float]:
        """Values of the finished epoch to add to its record, already reduced over processes (every
        process calls this)."""
        ...

    def evaluate(self, epoch: int) -> dict[str, float]:
        """Validation metrics of the model after ``epoch`` epochs (0: untrained), keys prefixed ``val/`` (main
        process only)."""
        ...

    def save(self, folder: Path, record: dict[str, Any]) -> None:
        """Write the model into the (empty, temporary) checkpoint ``folder`` (main process only)."""
        ...

    def load(self, folder: Path) -> None:
        """Put back the model saved in ``folder`` (resume)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Extra state a resumed run needs besides the model (a learnable loss, say)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        ...

    def summary(self) -> dict[str, Any]:
        """Extra sections of ``metrics.json`` (what the run trained on, say)."""
        ...


class ObjectiveBase:
    """Defaults of the optional parts of :class:`Objective`: nothing after a step, no epoch statistics,
    no generators, no extra state, no extra summary, weights restored by whoever built the model."""

    step_stats: tuple[str, ...] = ()
    selection: str | None = None

    def generators(self) -> dict[str, torch.Generator]:
        return {}

    def after_step(self) -> dict[str, float]:
        return {}

    def epoch_stats(self) -> dict[str, float]:
        return {}

    def load(self, folder: Path) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def summary(self) -> dict[str, Any]:
        return {}
