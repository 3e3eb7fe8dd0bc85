"""The epoch loop shared by ``pretrain`` and ``finetune``.

What differs between the two (the forward pass and loss, what happens after an optimiser step,
the held-out evaluation) is an :class:`Objective`; everything else lives here once: distributed
sampling, AdamW with a cosine schedule, autocast and gradient scaling, gradient clipping, the step
and epoch logs, epoch checkpoints and exact resumption.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cirlab.distributed import DistributedContext
from cirlab.encoder_training.checkpointing import (
    TrainerState,
    capture_rng,
    load_trainer_state,
    restore_rng,
    save_checkpoint,
)
from cirlab.encoder_training.optim import adamw, cosine_with_warmup, default_warmup
from cirlab.encoder_training.options import TrainingOptions
from cirlab.encoder_training.runlog import RunLog
from cirlab.errors import CirlabError, ConfigError
from cirlab.progress import progress
from cirlab.runtime import autocast


class TrainingDivergedError(CirlabError):
    """The loss became NaN or infinite."""


class Objective(Protocol):
    """The part of a training run that is specific to what is being learned."""

    def loss(self, module: nn.Module, batch: Any) -> Tensor:
        """Forward ``batch`` through ``module`` (the possibly DDP-wrapped model) and return the loss."""

    def after_step(self, model: nn.Module) -> dict[str, float]:
        """Adjust ``model`` after an optimiser step; return extra values to log for the step."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Held-out metrics of ``model`` (called on the main process only)."""


@dataclass
class EpochRecord:
    """What one finished epoch measured."""

    epoch: int  # 1-based
    step: int  # optimiser steps taken by the end of the epoch
    loss: float  # mean training loss over the epoch's steps
    samples_per_s: float  # training samples (all processes) per second of wall time
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass
class TrainingRun:
    """The outcome of :func:`train_encoder`."""

    history: list[EpochRecord]
    steps: int
    seconds: float  # wall time of this call (a resumed run counts only its own part)
    resumed_from_epoch: int  # 0 for a run that started from scratch
    before: dict[str, float] | None  # held-out metrics before the first step, when asked for


def train_encoder(*, model: nn.Module, model_name: str, objective: Objective, dataset: Dataset,
                  options: TrainingOptions, out: Path, ctx: DistributedContext, device: torch.device,
                  forward_module: nn.Module | None = None, resume_from: Path | None = None,
                  evaluate_before: bool = False, kind: str = "train", checkpoint_extra: dict[str, Any] | None = None,
                  on_epoch_end: Callable[[EpochRecord], None] | None = None) -> TrainingRun:
    """Train ``model`` (already on ``device``, weights already restored when resuming) for ``options.epochs``.

    ``dataset`` yields samples that ``objective.loss`` understands and has ``set_epoch``.
    ``forward_module`` is what the objective runs forward (and what DDP wraps) when that is a module
    around ``model`` (one that composes queries, say); ``model`` is what is saved. With
    ``resume_from`` (an epoch checkpoint folder) the optimiser, schedule, RNG states and history are
    restored and training continues with the next epoch. After every epoch the main process
    evaluates, logs and checkpoints, then ``on_epoch_end`` runs on every process; the final weights
    are written to ``out`` at the end.
    """
    started = time.perf_counter()
    loop = _EpochLoop(model, forward_module or model, objective, dataset, options, ctx, device)
    state = TrainerState()
    before: dict[str, float] | None = None
    if resume_from is not None:
        state = load_trainer_state(resume_from)
        loop.load_state(state)
        before = state.extra.get("before")
    elif evaluate_before:
        before = objective.evaluate(model) if ctx.is_main else None
        ctx.barrier()
    history = [EpochRecord.from_dict(r) for r in state.history]
    log = RunLog(out, enabled=ctx.is_main, tensorboard=options.tensorboard, resume_step=state.step,
                 resume_epoch=state.epoch)
    if resume_from is not None:
        restore_rng(state.rng)
    loop.step = state.step
    try:
        for epoch in range(state.epoch, options.epochs):
            record = loop.run_epoch(epoch, log, desc=f"{kind} epoch {epoch + 1}/{options.epochs}", out=out)
            history.append(record)
            if ctx.is_main:
                save_checkpoint(out, model, model_name, loop.state(epoch + 1, history, before),
                                keep=options.keep_checkpoints, extra=checkpoint_extra)
                log.epoch({"epoch": record.epoch, "step": record.step, "loss": record.loss,
                           "samples_per_s": record.samples_per_s, "seconds": record.seconds, **record.metrics})
            ctx.barrier()
            if on_epoch_end is not None:
                on_epoch_end(record)
    finally:
        log.close()
    if ctx.is_main:
        from cirlab.encoders import save_encoder_checkpoint

        save_encoder_checkpoint(model, model_name, out, extra={"epoch": options.epochs, "step": loop.step,
                                                              **(checkpoint_extra or {})})
    ctx.barrier()
    return TrainingRun(history=history, steps=loop.step, seconds=time.perf_counter() - started,
                       resumed_from_epoch=state.epoch if resume_from is not None else 0, before=before)


class _EpochLoop:
    """Sampler, loader, optimiser, schedule and gradient scaler of one run, and its epochs and steps."""

    def __init__(self, model: nn.Module, forward_module: nn.Module, objective: Objective, dataset: Dataset,
                 options: TrainingOptions, ctx: DistributedContext, device: torch.device) -> None:
        self.model, self.objective, self.dataset = model, objective, dataset
        self.options, self.ctx, self.device = options, ctx, device
        self.sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=options.seed, drop_last=True)
        if len(self.sampler) < options.batch_size:
            raise ConfigError(f"batch size {options.batch_size} is larger than the {len(self.sampler)} training "
                              f"samples per process ({len(dataset)} in all, {ctx.world_size} processes); "
                              f"lower --batch-size")
        self.loader = DataLoader(dataset, batch_size=options.batch_size, sampler=self.sampler,
                                 num_workers=options.num_workers, drop_last=True, pin_memory=device.type == "cuda")
        total_steps = len(self.loader) * options.epochs
        warmup = options.warmup_steps if options.warmup_steps is not None else default_warmup(total_steps)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = adamw(model, options.lr, options.weight_decay, betas=options.betas, eps=options.eps)
        self.scheduler = cosine_with_warmup(self.optimizer, warmup, total_steps)
        self.scaler = torch.amp.GradScaler(device.type) if options.precision == "fp16" else None
        self.module = forward_module
        if ctx.is_distributed:
            self.module = DistributedDataParallel(forward_module,
                                                  device_ids=[device.index] if device.type == "cuda" else None)
        self.global_batch = options.batch_size * ctx.world_size
        self.step = 0

    def load_state(self, state: TrainerState) -> None:
        """Restore optimiser, schedule and scaler from a checkpoint's trainer state."""
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)

    def state(self, epochs_done: int, history: list[EpochRecord], before: dict[str, float] | None) -> TrainerState:
        """The trainer state after ``epochs_done`` epochs (RNG states captured now)."""
        return TrainerState(epoch=epochs_done, step=self.step, optimizer=self.optimizer.state_dict(),
                            scheduler=self.scheduler.state_dict(),
                            scaler=self.scaler.state_dict() if self.scaler is not None else None,
                            rng=capture_rng(), history=[r.to_dict() for r in history],
                            extra={"before": before} if before is not None else {})

    def run_epoch(self, epoch: int, log: RunLog, *, desc: str, out: Path) -> EpochRecord:
        """Train one epoch (0-based ``epoch``), logging every step; then evaluate on the main process."""
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
        self.model.train()
        started = last = time.perf_counter()
        losses: list[float] = []
        bar = progress(self.loader, desc=desc, total=len(self.loader), unit="batch",
                       enabled=self.ctx.is_main and self.options.progress)
        for batch in bar:
            row = self._train_step(batch)
            if not math.isfinite(row["loss"]):
                raise TrainingDivergedError(f"{out}: loss became {row['loss']} at step {self.step} "
                                            f"(epoch {epoch + 1}); try a lower --lr or --precision fp32")
            now = time.perf_counter()
            log.step({"epoch": epoch + 1, "step": self.step, **row,
                      "samples_per_s": self.global_batch / max(now - last, 1e-9)})
            last = now
            losses.append(row["loss"])
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        bar.close()
        seconds = time.perf_counter() - started
        metrics = self.objective.evaluate(self.model) if self.ctx.is_main else {}
        return EpochRecord(epoch=epoch + 1, step=self.step, loss=sum(losses) / len(losses),
                           samples_per_s=self.global_batch * len(losses) / max(seconds, 1e-9), seconds=seconds,
                           metrics=metrics)

    def _train_step(self, batch: Any) -> dict[str, float]:
        """One optimiser step; returns the loss (mean over processes), learning rate and extras to log."""
        with autocast(self.device, self.options.precision):
            loss = self.objective.loss(self.module, batch)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        row: dict[str, float] = {}
        if self.options.grad_clip is not None:
            row["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.options.grad_clip))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.scheduler.step()
        self.step += 1
        return {"loss": _mean_over_processes(loss.detach().float(), self.ctx), "lr": lr, **row,
                **self.objective.after_step(self.model)}


def _mean_over_processes(value: Tensor, ctx: DistributedContext) -> float:
    """The mean of a scalar over every process (for logging the global loss)."""
    if ctx.is_distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= ctx.world_size
    return float(value)


@contextlib.contextmanager
def quiet_gather_deprecation() -> Iterator[None]:
    """Hide torch's FutureWarning about ``torch.distributed.nn.all_gather``, which open_clip's feature gather
    uses: it would repeat on every process and users cannot act on it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
                                category=FutureWarning)
        yield
