"""``train(config)``: a combiner trained on cached features by the engine, and what the run produced.

The objective (:mod:`cirlab.training.objective`) says what a step computes; the engine
(:mod:`cirlab.engine`) runs the loop, checkpoints ``best/`` and ``last/``, logs and resumes. The files
of the run folder are described in :mod:`cirlab.engine.runlog`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cirlab.distributed import distributed_session
from cirlab.engine import Engine, EpochCallback, LoopSettings, TrainingDivergedError
from cirlab.features.cache import FeatureCache
from cirlab.runtime import resolve_device
from cirlab.training.config import RESUMABLE_CHANGES, TrainConfig
from cirlab.training.objective import CombinerObjective

__all__ = ["TrainResult", "TrainingDivergedError", "loop_settings", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns (the same on every process)."""

    run_dir: Path  # the run folder
    status: str  # "complete" (reached config.epochs) or "stopped" (by stop_after_epochs)
    epochs_completed: int  # epochs trained so far, over every invocation of this run
    steps: int  # optimiser steps so far
    best_epoch: int  # epoch of the checkpoint in best/ (0 = the untrained combiner)
    best_headline: float  # its validation headline, mean of Recall@10 and Recall@50 in percent
    last_eval: dict[str, Any]  # the latest evaluation's history record
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch records, as in metrics.json


def loop_settings(config: TrainConfig) -> LoopSettings:
    """The engine's settings for a combiner run: AdamW with torch's default betas, the config's schedule."""
    return LoopSettings(epochs=config.epochs, lr=config.lr, weight_decay=config.weight_decay,
                        schedule=config.schedule, warmup_steps=config.warmup_steps, min_lr_ratio=config.min_lr_ratio,
                        grad_clip=config.grad_clip, precision=config.precision, eval_every=config.eval_every,
                        evaluate_before=True, log_every=config.log_every, tensorboard=config.tensorboard,
                        resume=config.resume, stop_after_epochs=config.stop_after_epochs)


def run_identity(config: TrainConfig) -> dict[str, Any]:
    """The config keys a resumed run must share with the checkpoint (all but :data:`RESUMABLE_CHANGES`)."""
    return {key: value for key, value in config.to_dict().items() if key not in RESUMABLE_CHANGES}


def train(config: TrainConfig, on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Train a combiner as ``config`` says, writing the run folder ``config.out``.

    Under ``torchrun`` each process calls this with the same config. ``on_epoch_end`` is called on
    every process after each epoch has been checkpointed, with that epoch's history record.
    """
    config.validate()
    device = resolve_device(config.device)
    with distributed_session(device) as ctx:
        if ctx.is_distributed and device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        cache = FeatureCache.open(config.features)
        objective = CombinerObjective(config, cache, device, ctx)
        engine = Engine(objective, loop_settings(config), config.out, ctx=ctx, device=device,
                        identity=run_identity(config), config=config.to_dict())
        fit = engine.fit(on_epoch_end)
    return TrainResult(run_dir=fit.run_dir, status=fit.status, epochs_completed=fit.epochs_completed,
                       steps=fit.steps, best_epoch=int(fit.best["epoch"]), best_headline=float(fit.best["value"]),
                       last_eval=fit.last_eval, history=fit.history)
