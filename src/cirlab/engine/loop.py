"""The one training loop of cirlab: combiner training, encoder pretraining and fine-tuning all run here.

For every epoch the engine asks the objective for its batches and, per batch, for the loss; it then
takes one optimiser step (gradient scaling for fp16, clipping, AdamW, the schedule) and keeps the
step's statistics on the device (:mod:`cirlab.engine.stats`). Nothing in a step waits for the device:
every ``sync_every`` steps, and at the end of each epoch, the pending statistics are read back in one
transfer, averaged over processes, checked for divergence and logged. On the CPU, freed memory is kept
for the next step's buffers while the engine trains (:mod:`cirlab.engine.allocator`). At the end of an
epoch it evaluates (on the main process, shared with every process), keeps the best checkpoint by the
objective's selection metric, writes the run log and then the ``last/`` checkpoint with everything a
resumed run needs: the model, optimiser, schedule, scaler, RNG states of every process, history and
the run's identity. A run resumed with ``resume`` continues after the last finished epoch and repeats
an uninterrupted run exactly (same number of processes); an identity that differs from the checkpoint's
is refused.

The run folder has one writer: the engine holds its lock (:mod:`cirlab.locking`) from the moment it
looks at the folder until the end of :meth:`Engine.fit`, so a second run into the same folder fails at
once. A folder that holds a run whose resumable ``last/`` checkpoint is gone (its ``best/`` or its
``metrics.json`` past the first epoch remain) is refused, with or without ``resume``: training it again
from scratch would silently overwrite what it holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cirlab.distributed import DistributedContext
from cirlab.engine.allocator import reuse_freed_memory
from cirlab.engine.checkpoint import (
    BEST,
    LAST,
    STATE_FILE,
    capture_rng,
    has_state,
    read_state,
    recover_folder,
    restore_rng,
)
from cirlab.engine.checkpoint import write_checkpoint as write_checkpoint_folder
from cirlab.engine.objective import Objective
from cirlab.engine.optim import build_optimizer, build_scheduler
from cirlab.engine.runlog import LEADING_STEP_COLUMNS, METRICS_FILE, RunLog
from cirlab.engine.stats import StepRecords, Stopwatch
from cirlab.errors import CirlabError, ConfigError
from cirlab.locking import lock_folder, remove_leftover_temporaries
from cirlab.progress import progress
from cirlab.runtime import autocast

LOGGER = logging.getLogger("cirlab.engine")

#: Called on every process after each epoch's checkpoint with that epoch's history record.
EpochCallback = Callable[[dict[str, Any]], None]


class TrainingDivergedError(CirlabError):
    """The loss became NaN or infinite (detected when the step's statistics are read back: at most
    ``sync_every - 1`` steps later, and always before the epoch's evaluation and checkpoint)."""


@dataclass
class LoopSettings:
    """How the engine trains: optimiser, schedule, evaluation, logging and resume."""

    epochs: int  # passes over the objective's batches
    lr: float  # peak learning rate
    weight_decay: float = 0.0  # AdamW decoupled weight decay (the objective's groups say which parameters get it)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "cosine"  # after the warm-up: cosine (to min_lr_ratio * lr) or constant
    warmup_steps: int = 0  # linear warm-up steps
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None  # clip the global gradient norm to this value; None or 0: no clipping
    precision: str = "fp32"  # fp16 adds gradient scaling (GPU only)
    eval_every: int = 1  # evaluate every this many epochs (and after the last)
    evaluate_before: bool = False  # evaluate the untrained model as epoch 0
    log_every: int = 1  # steps between rows of steps.csv
    sync_every: int = 50  # read step statistics back from the device (log them, check the loss) every this many steps
    tensorboard: bool = True
    resume: bool = False  # continue the run in the folder from its last checkpoint
    stop_after_epochs: int | None = None  # end this invocation after this epoch (the run stays resumable)
    progress: bool = True  # show a progress bar (main process; CIRLAB_NO_PROGRESS still wins)
    label: str = "train"  # name of the progress bar


@dataclass
class FitResult:
    """What :meth:`Engine.fit` returns (the same on every process)."""

    run_dir: Path
    status: str  # "complete" (reached epochs) or "stopped" (by stop_after_epochs)
    epochs_completed: int  # over every invocation of this run
    steps: int
    best: dict[str, Any]  # {"epoch", "value"} of the best evaluation ({} without a selection metric)
    last_eval: dict[str, Any]  # the latest evaluated epoch's record
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_epoch: int = 0  # 0 for a run that started from scratch
    seconds: float = 0.0  # wall time of this invocation


def check_run_folder(run_dir: Path, *, resume: bool, ctx: DistributedContext) -> Path | None:
    """Prepare ``run_dir`` and say where to resume from: its ``last/`` folder, or ``None`` for a fresh run.

    Under the folder's writer lock (refused at once while another process holds it): completes a
    checkpoint swap a kill interrupted and deletes temporaries of killed writes; refuses a folder that
    already holds a run unless ``resume`` is set, and a folder whose run can no longer be resumed (see
    :func:`lost_run`) in any case, so a run is never overwritten by accident.
    """
    with lock_folder(run_dir, ctx):
        if ctx.is_main:
            for name in (BEST, LAST):
                recover_folder(run_dir / name)
            remove_leftover_temporaries(run_dir)
        ctx.barrier()
        if not has_state(run_dir):
            lost = lost_run(run_dir)
            if lost:
                raise ConfigError(f"{run_dir}: holds a training run ({lost}) but no resumable checkpoint "
                                  f"({LAST}/{STATE_FILE} is missing); training again would overwrite it, so delete "
                                  f"the folder or choose another output folder")
            if resume and ctx.is_main and (run_dir / METRICS_FILE).exists():
                LOGGER.info("%s: the run was stopped before its first checkpoint; starting it again", run_dir)
            return None
        if not resume:
            raise ConfigError(f"{run_dir}: the folder already holds a training run; pass --resume to continue it or "
                              f"choose another output folder")
        return run_dir / LAST


def lost_run(run_dir: Path) -> str:
    """What shows that ``run_dir``, which has no resumable checkpoint, held a run that had one; empty if nothing.

    The engine writes ``metrics.json`` and then ``best/`` before each epoch's ``last/``, so a run killed
    before its first ``last/`` leaves a ``metrics.json`` of one epoch, still ``running``, and perhaps a
    ``best/``: starting it again loses nothing. Anything more (a finished or stopped run, more epochs,
    a ``best/`` without ``metrics.json``, an unreadable ``metrics.json``) means ``last/`` was deleted or lost.
    """
    path = run_dir / METRICS_FILE
    if not path.exists():
        return f"{BEST}/" if (run_dir / BEST).is_dir() else ""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"an unreadable {METRICS_FILE}"
    if not isinstance(metrics, dict) or not isinstance(metrics.get("history"), list):
        return f"a {METRICS_FILE} without a history"
    if metrics.get("status") != "running" or len(metrics["history"]) > 1:
        return f"{METRICS_FILE}: {metrics.get('status')}, {metrics.get('epochs_completed')} epochs"
    return ""


def identity_changes(saved: Mapping[str, Any], now: Mapping[str, Any], *, limit: int = 4) -> str:
    """How the identity ``now`` differs from the ``saved`` one, as ``key: checkpoint X, now Y; ...`` (the first
    ``limit`` differing keys of ``now``); empty when they agree. The one comparison of "is this the same run"."""
    changed = [key for key in now if saved.get(key) != now[key]]
    return "; ".join(f"{key}: checkpoint {saved.get(key)!r}, now {now[key]!r}" for key in changed[:limit])


class Engine:
    """One run: the objective, the optimiser and schedule, the history and the run folder."""

    def __init__(self, objective: Objective, settings: LoopSettings, run_dir: str | Path, *,
                 ctx: DistributedContext, device: torch.device, identity: dict[str, Any],
                 config: dict[str, Any] | None = None) -> None:
        """``identity``: what a resumed run must share with the checkpoint (data, model, what decides the result);
        ``config``: the run's resolved configuration, written to ``config.json``."""
        self.objective, self.settings = objective, settings
        self.run_dir = Path(run_dir)
        self.ctx, self.device = ctx, device
        self.identity, self.config = identity, config
        with autocast(device, settings.precision):  # refuses fp16 on CPU before any work
            pass
        if settings.sync_every < 1:
            raise ConfigError(f"sync_every must be at least 1, got {settings.sync_every}")
        self.stopwatch = Stopwatch(device)
        self.records = StepRecords(ctx, device)  # statistics of the steps not yet read back
        self.steps_per_epoch = objective.steps_per_epoch()
        self.total_steps = self.steps_per_epoch * settings.epochs
        groups = objective.parameter_groups(settings.weight_decay)
        trained = {id(p) for group in groups for p in group["params"]}
        # Clipped in the modules' own parameter order: the global norm is a float sum, and its order decides
        # its last bits (and so the run's numbers).
        self.params = list({id(p): p for module in objective.train_modules() for p in module.parameters()
                            if id(p) in trained}.values())
        self.optimizer = build_optimizer(groups, lr=settings.lr, betas=settings.betas, eps=settings.eps)
        self.scheduler = None
        if self.optimizer is not None:
            self.scheduler = build_scheduler(self.optimizer, total_steps=self.total_steps,
                                             warmup_steps=settings.warmup_steps, schedule=settings.schedule,
                                             min_lr_ratio=settings.min_lr_ratio)
        self.scaler = torch.amp.GradScaler(device.type) if settings.precision == "fp16" else None
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.epoch = 0
        self.step = 0
        self.resumed_from_epoch = 0
        self.resumed = False
        self._lock = lock_folder(self.run_dir, ctx)  # held until fit() ends
        self._holding = True
        try:
            resume_from = check_run_folder(self.run_dir, resume=settings.resume, ctx=ctx)
            if resume_from is not None:
                self._resume(read_state(self.run_dir), resume_from)
        except BaseException:
            self._lock.release()
            raise

    # ---------------------------------------------------------------- resume
    def _resume(self, state: dict[str, Any], folder: Path) -> None:
        changes = identity_changes(state.get("identity") or {}, self.identity)
        if changes:
            raise ConfigError(f"{self.run_dir}: cannot resume with a different config ({changes})")
        self.objective.load(folder)
        self.objective.load_state_dict(state.get("objective") or {})
        if self.optimizer is not None:
            if state.get("optimizer") is not None:
                self.optimizer.load_state_dict(state["optimizer"])
            elif int(state["epoch"]) < self.settings.epochs:
                LOGGER.warning("%s: the run had finished and its checkpoint keeps no optimiser state; training "
                               "more epochs restarts AdamW's moment estimates", self.run_dir)
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history, self.best = list(state["history"]), dict(state["best"])
        if state["world_size"] == self.ctx.world_size:
            restore_rng(state["rng"][self.ctx.rank], self.objective.generators(), self.device)
        else:
            LOGGER.warning("%s: resuming with %d processes instead of %d; random streams restart, so the run will "
                           "not repeat an uninterrupted one exactly", self.run_dir, self.ctx.world_size,
                           state["world_size"])
        self.resumed = True
        self.resumed_from_epoch = self.epoch
        LOGGER.info("resuming %s after epoch %d (step %d)", self.run_dir, self.epoch, self.step)

    # ---------------------------------------------------------------- the loop
    def fit(self, on_epoch_end: EpochCallback | None = None) -> FitResult:
        """Train until ``epochs`` (or ``stop_after_epochs``), evaluating, logging and checkpointing; the run
        folder's lock is given back when it returns."""
        settings = self.settings
        started_fit = time.perf_counter()
        if not self._holding:  # a second fit() of this engine
            self._lock = lock_folder(self.run_dir, self.ctx)
            self._holding = True
        log = None
        status = "complete"
        try:
            if self.ctx.is_main:
                columns = [*LEADING_STEP_COLUMNS, *self.objective.step_stats]
                if settings.grad_clip:
                    columns.append("grad_norm")
                columns.append("step_time_s")
                log = RunLog(self.run_dir, columns, tensorboard=settings.tensorboard,
                             resume_step=self.step if self.resumed else None)
                if self.config is not None:
                    log.write_config(self.config)
            if not self.resumed and settings.evaluate_before:
                self._finish_epoch({"epoch": 0, "step": 0, "steps": 0}, log, on_epoch_end, evaluate=True)
            end = settings.epochs if settings.stop_after_epochs is None else min(settings.epochs,
                                                                                  settings.stop_after_epochs)
            with reuse_freed_memory(self.device), \
                    progress(desc=settings.label, total=max(0, end - self.epoch) * self.steps_per_epoch, unit="step",
                             enabled=self.ctx.is_main and settings.progress) as bar:
                while self.epoch < end:
                    started = time.perf_counter()
                    record = self._train_epoch(self.epoch + 1, log, bar)
                    record["time/train_s"] = time.perf_counter() - started
                    self.epoch += 1
                    evaluate = self.epoch % settings.eval_every == 0 or self.epoch == settings.epochs
                    self._finish_epoch(record, log, on_epoch_end, evaluate=evaluate, started=started)
            if self.epoch < settings.epochs:
                status = "stopped"
            if log is not None:
                log.write_summary(self.history, self._summary(status))
        finally:
            if log is not None:
                log.close()
            self._lock.release()
            self._holding = False
        return FitResult(run_dir=self.run_dir, status=status, epochs_completed=self.epoch, steps=self.step,
                         best=dict(self.best), last_eval=self._last_eval(), history=list(self.history),
                         resumed_from_epoch=self.resumed_from_epoch, seconds=time.perf_counter() - started_fit)

    def _train_epoch(self, epoch: int, log: RunLog | None, bar: Any) -> dict[str, Any]:
        for module in self.objective.train_modules():
            module.train()
        totals: dict[str, list[float]] = {}
        lr = float("nan")
        steps = 0
        try:
            for batch in self.objective.batches(epoch):
                lr = self._train_step(batch)
                self.step += 1
                steps += 1
                bar.update(1)
                if len(self.records) >= self.settings.sync_every:
                    self._read_back(totals, log, bar)
        except BaseException:
            # An interrupted run still logs the steps it finished; the interruption is what is reported.
            with contextlib.suppress(Exception):
                self._read_back(totals, log, bar)
            raise
        self._read_back(totals, log, bar)
        record: dict[str, Any] = {"epoch": epoch, "step": self.step, "steps": steps, "lr": lr}
        for key in dict.fromkeys(("loss", *self.objective.step_stats, *totals)):
            record[_epoch_key(key)] = _nan_mean(totals.get(key, []))
        record.update(self.objective.epoch_stats())
        return record

    def _train_step(self, batch: Any) -> float:
        """One optimiser step of the epoch in progress, its statistics left in :attr:`records` as the device
        produces them; returns the learning rate used. Nothing here waits for the device."""
        started = self.stopwatch.start()
        lr = self.scheduler.get_last_lr()[0] if self.scheduler is not None else self.settings.lr
        output = self.objective.step(batch)
        values: dict[str, Any] = {}
        if self.optimizer is not None:
            grad_norm = self._optimise(output.loss)
            if grad_norm is not None:
                values["grad_norm"] = grad_norm
        values.update(self.objective.after_step())
        values["loss"] = output.loss.detach()
        for key in self.objective.step_stats:
            if key in output.stats or key not in values:
                values[key] = output.stats.get(key)
        values["step_time_s"] = self.stopwatch.stop(started)
        self.records.add({"epoch": self.epoch + 1, "step": self.step + 1, "lr": lr}, values)
        return lr

    def _read_back(self, totals: dict[str, list[float]], log: RunLog | None, bar: Any) -> None:
        """Read the pending steps' statistics (averaged over processes), stop at the first diverged step, log
        every ``log_every``-th step and add every step to the epoch's totals."""
        loss = None
        for facts, values in self.records.read():
            for key, value in values.items():
                totals.setdefault(key, []).append(value)
            loss = values["loss"]
            if not math.isfinite(loss):
                raise TrainingDivergedError(f"{self.run_dir}: the loss became {loss} at step {facts['step']} "
                                            f"(epoch {facts['epoch']}); lower the learning rate, clip gradients or "
                                            f"train in fp32")
            if log is not None and facts["step"] % self.settings.log_every == 0:
                log.log_step({**facts, **values})
        if loss is not None:
            bar.set_postfix(epoch=facts["epoch"], loss=f"{loss:.4f}")

    def _optimise(self, loss: torch.Tensor) -> torch.Tensor | None:
        """Backward pass and optimiser step; returns the gradient norm before clipping (when clipping), on the
        device."""
        optimizer, scaler = self.optimizer, self.scaler
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        grad_norm = None
        if self.settings.grad_clip:
            if scaler is not None:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        self.scheduler.step()
        return grad_norm

    # ---------------------------------------------------------------- end of an epoch
    def _finish_epoch(self, record: dict[str, Any], log: RunLog | None, on_epoch_end: EpochCallback | None,
                      *, evaluate: bool, started: float | None = None) -> None:
        """Evaluate (when due), keep the best, write the records and then the checkpoints, call back."""
        selection = self.objective.selection
        improved = False
        if evaluate:
            eval_started = time.perf_counter()
            metrics = self.ctx.broadcast(self.objective.evaluate(record["epoch"]) if self.ctx.is_main else None)
            record.update(metrics)
            record["time/eval_s"] = time.perf_counter() - eval_started
            if selection is not None:
                improved = not self.best or metrics[selection] > self.best["value"]
                record["best"] = int(improved)
                if improved:
                    self.best = {"epoch": record["epoch"], "value": metrics[selection]}
        elif selection is not None:
            record["best"] = 0
        self.history.append(record)
        if started is not None:
            record["time/epoch_s"] = time.perf_counter() - started
        rng_states = self.ctx.gather(capture_rng(self.objective.generators(), self.device))
        if self.ctx.is_main:
            log.log_epoch(record)
            log.write_summary(self.history, self._summary("running"))
            log.sync()  # what this checkpoint covers is on disk before the checkpoint exists
            if improved:
                self._write(self.run_dir / BEST, record)
            self._write(self.run_dir / LAST, record, state=self._state(rng_states))
            LOGGER.info(_describe(record, self.best, selection, self.settings.epochs))
        self.ctx.barrier()
        if on_epoch_end is not None:
            on_epoch_end(dict(record))

    def _write(self, folder: Path, record: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        write_checkpoint_folder(folder, lambda tmp: self.objective.save(tmp, record), state)

    def _state(self, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        finished = self.epoch >= self.settings.epochs
        return {
            "epoch": self.epoch,
            "step": self.step,
            "world_size": self.ctx.world_size,
            "identity": self.identity,
            # A finished run needs no optimiser state (the largest part of a checkpoint) unless it is extended.
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None and not finished else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "objective": self.objective.state_dict(),
            "rng": rng_states,
            "history": self.history,
            "best": self.best,
        }

    def _last_eval(self) -> dict[str, Any]:
        return next((r for r in reversed(self.history) if any(k.startswith("val/") for k in r)), {})

    def _summary(self, status: str) -> dict[str, Any]:
        from cirlab.provenance import provenance

        best_record = next((r for r in self.history if r["epoch"] == self.best.get("epoch")
                            and any(k.startswith("val/") for k in r)), {})
        last_eval = self._last_eval()
        return {
            "status": status,
            "epochs_completed": self.epoch,
            "steps": self.step,
            "config": self.config,
            **self.objective.summary(),
            "best": {"epoch": self.best.get("epoch"), "metric": self.objective.selection,
                     "value": self.best.get("value"), "metrics": best_record},
            "last_eval": {"epoch": last_eval.get("epoch"), "metrics": last_eval},
            "provenance": provenance(),
        }


def _epoch_key(step_key: str) -> str:
    """Name of a step statistic's epoch mean: ``time/mean_<name>_s`` for durations, ``train/<key>`` otherwise."""
    if step_key.endswith("_time_s"):
        return f"time/mean_{step_key[: -len('_time_s')]}_s"
    return f"train/{step_key}"


def _nan_mean(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else None


def _describe(record: dict[str, Any], best: dict[str, Any], selection: str | None, epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    if record.get("train/loss") is not None:
        parts.append(f"loss {record['train/loss']:.4f}")
    if record.get("train/active_fraction") is not None:
        parts.append(f"active {record['train/active_fraction']:.2f}")
    if selection is not None and selection in record:
        parts.append(f"{selection.removeprefix('val/')} {record[selection]:.2f} "
                     f"(best {best['value']:.2f} at epoch {best['epoch']})")
    if record.get("time/epoch_s") is not None:
        parts.append(f"{record['time/epoch_s']:.1f} s")
    return "  ".join(parts)
