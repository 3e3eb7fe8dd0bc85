"""The combiner trainer: cached features in, a trained combiner and a documented run folder out.

One step, for a batch of training triplets:

1. the combiner maps (reference image features, text features of a caption form drawn uniformly per
   triplet) to query embeddings;
2. the negative sampler picks ``num_negatives`` gallery indices per query over the **whole** training
   gallery, looking at the detached queries (the gallery is fixed: the encoders are frozen);
3. the loss scores (queries, target features, negative features); AdamW, the learning-rate schedule,
   gradient clipping and optional mixed precision update the combiner.

Every ``eval_every`` epochs (and before training, and after the last epoch) process 0 runs the FashionIQ
validation protocol; the best evaluation by the headline (mean of Recall@10 and Recall@50) is kept in
``best/``, the latest epoch in ``last/`` with everything needed to resume exactly. The files of the run
folder are described in :mod:`cirlab.training.logging`.

Under ``torchrun`` every process takes its slice of each global batch (:func:`~cirlab.training.data.epoch_batches`),
gradients are averaged by DistributedDataParallel, per-step statistics are averaged over processes, and
process 0 evaluates and writes. In-batch negatives (``negatives: in-batch``) are the other targets of the
process's own slice, as in the common per-GPU contrastive set-up; mined negatives come from the whole gallery
whatever the number of processes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cirlab.distributed import DistributedContext, init_distributed, shutdown_distributed
from cirlab.errors import CacheMismatchError, CirlabError, ConfigError
from cirlab.features.cache import FeatureCache
from cirlab.progress import progress
from cirlab.runtime import autocast, resolve_device, seed_everything
from cirlab.training.checkpoint import BEST, LAST, capture_rng, has_state, read_state, recover_folder, restore_rng
from cirlab.training.checkpoint import write_checkpoint as write_checkpoint_folder
from cirlab.training.config import IN_BATCH, RESUMABLE_CHANGES, TrainConfig
from cirlab.training.data import Batch, TrainingData, epoch_batches, load_training_data, steps_per_epoch
from cirlab.training.logging import RunRecorder
from cirlab.training.schedule import build_scheduler, lr_factor

LOGGER = logging.getLogger(__name__)

#: Manifest keys that identify a feature cache; a run resumes only on a cache that agrees on all of them.
CACHE_IDENTITY_KEYS: tuple[str, ...] = ("model", "pretrained", "weights_hash", "preprocess", "data_fingerprint",
                                        "dim", "num_images", "num_triplets")

#: Loss statistics logged per step (a loss that does not report one leaves it empty).
LOSS_STATS: tuple[str, ...] = ("active_fraction", "mean_d_pos", "mean_d_neg")

#: Sampler statistics that are states, not counters: merged over processes by their maximum, not summed.
GAUGE_SAMPLER_STATS: frozenset[str] = frozenset({"stage"})

#: Called on every process after each epoch's checkpoint with that epoch's history record.
EpochCallback = Callable[[dict[str, Any]], None]


class TrainingDivergedError(CirlabError):
    """The loss became NaN or infinite."""


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


def train(config: TrainConfig, on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Train a combiner as ``config`` says, writing the run folder ``config.out``; see the module docstring.

    Under ``torchrun`` each process calls this with the same config. ``on_epoch_end`` is called on
    every process after each epoch has been checkpointed.
    """
    config.validate()
    device = resolve_device(config.device)
    owns_group = not (dist.is_available() and dist.is_initialized())
    ctx = init_distributed(device)
    try:
        if ctx.is_distributed and device.type == "cuda":
            device = torch.device("cuda", ctx.local_rank)
        return Trainer(config, device, ctx).run(on_epoch_end)
    finally:
        if owns_group:
            shutdown_distributed()


class Trainer:
    """One run's state: data, combiner, loss, sampler, optimiser, generators, history."""

    def __init__(self, config: TrainConfig, device: torch.device, ctx: DistributedContext) -> None:
        self.config = config
        self.device = device
        self.ctx = ctx
        self.run_dir = Path(config.out)
        if config.batch_size % ctx.world_size:
            raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {ctx.world_size} processes")
        with autocast(device, config.precision):  # refuses fp16 on CPU before any work
            pass
        self._check_run_folder()
        self.cache = FeatureCache.open(config.features)
        self._build()
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.epoch = 0
        self.step = 0
        self.resumed = False
        if config.resume and has_state(self.run_dir):
            self._resume(read_state(self.run_dir))

    # ---------------------------------------------------------------- set-up
    def _check_run_folder(self) -> None:
        if self.ctx.is_main:
            for name in (BEST, LAST):
                recover_folder(self.run_dir / name)
        self.ctx.barrier()
        if has_state(self.run_dir) and not self.config.resume:
            raise ConfigError(f"{self.run_dir}: the folder already holds a training run; pass --resume to continue "
                              f"it or choose another --out")

    def _build(self) -> None:
        from cirlab.combiners import build_combiner
        from cirlab.losses import build_loss

        config, device = self.config, self.device
        seed_everything(config.seed)  # the same initial weights on every process
        self.data: TrainingData = load_training_data(self.cache, config.categories, config.caption_forms, device)
        self.steps_per_epoch = steps_per_epoch(len(self.data), config.batch_size, config.drop_last)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(self.data)} training triplets "
                              f"with drop_last; lower batch_size or set drop_last: false")
        self.total_steps = self.steps_per_epoch * config.epochs
        self.combiner: nn.Module = build_combiner(config.combiner, self.data.dim, **config.combiner_options).to(device)
        self.loss_fn = build_loss(config.loss, **config.loss_options)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.to(device)
        self.sampler = self._build_sampler()

        params = [p for p in self.combiner.parameters() if p.requires_grad]
        if isinstance(self.loss_fn, nn.Module):
            params += [p for p in self.loss_fn.parameters() if p.requires_grad]
        self.params = params
        self.optimizer = None
        self.scheduler = None
        if params:
            self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
            self.scheduler = build_scheduler(self.optimizer, total_steps=self.total_steps,
                                             warmup_steps=config.warmup_steps, schedule=config.schedule,
                                             min_lr_ratio=config.min_lr_ratio)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.model = self._wrap(self.combiner)
        self.loss_model = self._wrap(self.loss_fn) if isinstance(self.loss_fn, nn.Module) else self.loss_fn

        # Different streams per process (their shards differ), reproducible from the seed.
        batch_seed, sampler_seed, global_seed = np.random.SeedSequence([config.seed, self.ctx.rank]).generate_state(3)
        self.batch_generator = torch.Generator().manual_seed(int(batch_seed))
        self.sampler_generator = torch.Generator(device=device).manual_seed(int(sampler_seed))
        seed_everything(int(global_seed))  # dropout masks differ between processes
        self.validation = None
        if self.ctx.is_main:
            from cirlab.evaluation.fashioniq import FashionIQValidation

            val_categories = config.val_categories or self.data.gallery.category_names
            self.validation = FashionIQValidation(self.cache, categories=val_categories, split=config.val_split,
                                                  device=device, batch_size=config.eval_batch_size)

    def _build_sampler(self) -> Any:
        if self.config.negatives == IN_BATCH:
            return None
        from cirlab.negatives import Gallery, build_sampler

        gallery = self.data.gallery
        return build_sampler(self.config.negatives, Gallery(gallery.features, gallery.categories,
                                                            gallery.duplicate_groups),
                             **self.config.negatives_options)

    def _wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel around ``module`` when several processes train it."""
        if not self.ctx.is_distributed or not any(p.requires_grad for p in module.parameters()):
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The generators whose states a checkpoint keeps."""
        return {"batch": self.batch_generator, "sampler": self.sampler_generator}

    def _cache_identity(self) -> dict[str, Any]:
        return {key: self.cache.manifest.get(key) for key in CACHE_IDENTITY_KEYS}

    # ---------------------------------------------------------------- resume
    def _resume(self, state: dict[str, Any]) -> None:
        from cirlab.combiners import load_combiner

        saved, now = state["config"], self.config.to_dict()
        changed = [key for key in now if key not in RESUMABLE_CHANGES and saved.get(key) != now[key]]
        if changed:
            details = "; ".join(f"{key}: checkpoint {saved.get(key)!r}, now {now[key]!r}" for key in changed)
            raise ConfigError(f"{self.run_dir}: cannot resume with a different config ({details})")
        identity = self._cache_identity()
        if state["cache"] != identity:
            diff = [key for key in identity if state["cache"].get(key) != identity[key]]
            raise CacheMismatchError(f"{self.run_dir}: cannot resume on feature cache {self.cache.root}: it differs "
                                     f"from the run's cache in {', '.join(diff)}")
        loaded = load_combiner(self.run_dir / LAST, device=str(self.device))
        self.combiner.load_state_dict(loaded.state_dict())
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if isinstance(self.loss_fn, nn.Module) and state.get("loss"):
            self.loss_fn.load_state_dict(state["loss"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history, self.best = list(state["history"]), dict(state["best"])
        if state["world_size"] == self.ctx.world_size:
            restore_rng(state["rng"][self.ctx.rank], self.generators, self.device)
        else:
            LOGGER.warning("%s: resuming with %d processes instead of %d; random streams restart, so the run will "
                           "not repeat an uninterrupted one exactly", self.run_dir, self.ctx.world_size,
                           state["world_size"])
        self.resumed = True
        if self.ctx.is_main:
            LOGGER.info("resuming %s after epoch %d (step %d)", self.run_dir, self.epoch, self.step)

    # ---------------------------------------------------------------- the loop
    def run(self, on_epoch_end: EpochCallback | None = None) -> TrainResult:
        """Train until ``config.epochs`` (or ``stop_after_epochs``), evaluating and checkpointing."""
        config = self.config
        recorder = None
        if self.ctx.is_main:
            recorder = RunRecorder(self.run_dir, tensorboard=config.tensorboard,
                                   resume_step=self.step if self.resumed else None)
            recorder.write_config(config.to_dict())
        status = "complete"
        try:
            if not self.resumed:
                self._finish_epoch({"epoch": 0, "step": 0, "steps": 0}, recorder, on_epoch_end, evaluate=True)
            end = config.epochs if config.stop_after_epochs is None else min(config.epochs, config.stop_after_epochs)
            with progress(desc="train", total=max(0, end - self.epoch) * self.steps_per_epoch, unit="step",
                          enabled=self.ctx.is_main) as bar:
                while self.epoch < end:
                    started = time.perf_counter()
                    record = self._train_epoch(self.epoch + 1, recorder, bar)
                    record["time/train_s"] = time.perf_counter() - started
                    self.epoch += 1
                    evaluate = self.epoch % config.eval_every == 0 or self.epoch == config.epochs
                    self._finish_epoch(record, recorder, on_epoch_end, evaluate=evaluate, started=started)
            if self.epoch < config.epochs:
                status = "stopped"
            if recorder is not None:
                recorder.write_summary(self.history, self._summary(status))
        finally:
            if recorder is not None:
                recorder.close()
        last_eval = next((r for r in reversed(self.history) if "val/headline" in r), {})
        return TrainResult(run_dir=self.run_dir, status=status, epochs_completed=self.epoch, steps=self.step,
                           best_epoch=int(self.best["epoch"]), best_headline=float(self.best["headline"]),
                           last_eval=last_eval, history=list(self.history))

    def _train_epoch(self, epoch: int, recorder: RunRecorder | None, bar: Any) -> dict[str, Any]:
        config = self.config
        self.model.train()
        if isinstance(self.loss_model, nn.Module):
            self.loss_model.train()
        batches = epoch_batches(len(self.data), epoch=epoch, seed=config.seed, batch_size=config.batch_size,
                                drop_last=config.drop_last, rank=self.ctx.rank, world_size=self.ctx.world_size)
        if self.sampler is not None:
            self.sampler.reset_stats()
        totals: dict[str, list[float]] = {}
        lr = float("nan")
        for indices in batches:
            values, lr = self._train_step(self.data.batch(torch.from_numpy(indices), self.batch_generator))
            self.step += 1
            for key, value in values.items():
                totals.setdefault(key, []).append(value)
            if not math.isfinite(values["loss"]):
                raise TrainingDivergedError(f"{self.run_dir}: the loss became {values['loss']} at step {self.step} "
                                            f"(epoch {epoch}); lower lr, clip gradients or train in fp32")
            if recorder is not None and self.step % config.log_every == 0:
                recorder.log_step({"epoch": epoch, "step": self.step, "lr": lr, **values})
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{values['loss']:.4f}")
        record: dict[str, Any] = {"epoch": epoch, "step": self.step, "steps": len(batches), "lr": lr}
        for key in ("loss", *LOSS_STATS):
            record[f"train/{key}"] = _nan_mean(totals.get(key, []))
        record["time/mean_sample_s"] = _nan_mean(totals.get("sample_time_s", []))
        record["time/mean_step_s"] = _nan_mean(totals.get("step_time_s", []))
        for key, value in self._sum_over_processes(self._sampler_counters()).items():
            record[f"sampler/{key}"] = value
        return record

    def _train_step(self, batch: Batch) -> tuple[dict[str, float], float]:
        """One optimiser step; returns its statistics (averaged over processes) and the learning rate used."""
        config = self.config
        started = time.perf_counter()
        lr = (self.scheduler.get_last_lr()[0] if self.scheduler is not None
              else config.lr * lr_factor(self.step, total_steps=self.total_steps, warmup_steps=config.warmup_steps,
                                         schedule=config.schedule, min_lr_ratio=config.min_lr_ratio))
        with autocast(self.device, config.precision):
            queries = self.model(batch.reference, batch.text)
        queries = queries.float()
        gallery = self.data.gallery.features
        positives = gallery[batch.positives]
        negatives, sample_time = None, 0.0
        if self.sampler is not None:
            negatives, sample_time = self._mine(queries, batch)
        output = self.loss_model(queries, positives, negatives)
        if self.optimizer is not None:
            self._optimise(output.loss)
        self._synchronize()
        values = {"loss": float(output.loss.detach()), "sample_time_s": sample_time}
        for key in LOSS_STATS:
            values[key] = _as_float(output.stats.get(key)) if output.stats else float("nan")
        values["step_time_s"] = time.perf_counter() - started
        return self._mean_over_processes(values), lr

    def _mine(self, queries: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, float]:
        """Negatives of ``batch`` over the whole gallery, and the time mining took."""
        from cirlab.negatives import BatchInfo

        self._synchronize()
        started = time.perf_counter()
        info = BatchInfo(categories=batch.categories, progress=self.step / max(1, self.total_steps))
        with torch.no_grad():
            indices = self.sampler.sample(queries.detach(), batch.positives, info, self.config.num_negatives,
                                          self.sampler_generator)
        negatives = self.data.gallery.features[indices]
        self._synchronize()
        return negatives, time.perf_counter() - started

    def _optimise(self, loss: torch.Tensor) -> None:
        optimizer, scaler = self.optimizer, self.scaler
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.config.grad_clip > 0:
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        self.scheduler.step()

    # ---------------------------------------------------------------- end of an epoch
    def _finish_epoch(self, record: dict[str, Any], recorder: RunRecorder | None, on_epoch_end: EpochCallback | None,
                      *, evaluate: bool, started: float | None = None) -> None:
        """Evaluate (when due), keep the best, checkpoint, write the records, call back."""
        if evaluate:
            eval_started = time.perf_counter()
            metrics = self._evaluate()
            record.update(metrics)
            record["time/eval_s"] = time.perf_counter() - eval_started
            improved = not self.best or metrics["val/headline"] > self.best["headline"]
            record["best"] = int(improved)
            if improved:
                self.best = {"epoch": record["epoch"], "headline": metrics["val/headline"]}
        else:
            improved = False
            record["best"] = 0
        self.history.append(record)
        if started is not None:
            record["time/epoch_s"] = time.perf_counter() - started
        rng_states = self._gather(capture_rng(self.generators, self.device))
        if self.ctx.is_main:
            if improved:
                self._write_combiner(self.run_dir / BEST, record)
            self._write_combiner(self.run_dir / LAST, record, state=self._state(rng_states))
            recorder.log_epoch(record)
            recorder.write_summary(self.history, self._summary("running"))
            LOGGER.info(_describe(record, self.best, self.config.epochs))
        self.ctx.barrier()
        if on_epoch_end is not None:
            on_epoch_end(dict(record))

    def _evaluate(self) -> dict[str, float]:
        """Validation metrics of the current combiner (computed on process 0, shared with all)."""
        metrics: dict[str, float] = {}
        if self.ctx.is_main:
            result = self.validation.evaluate(self.combiner, show_progress=False)
            metrics["val/headline"] = float(result.headline)
            for k, value in result.mean.items():
                metrics[f"val/mean/R@{k}"] = float(value)
            for category, category_result in result.per_category.items():
                for k, value in category_result.recall.items():
                    metrics[f"val/{category}/R@{k}"] = float(value)
        if self.ctx.is_distributed:
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        return metrics

    def _write_combiner(self, folder: Path, record: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        from cirlab.combiners import save_combiner

        extra = {"epoch": record["epoch"], "step": record["step"], "val_headline": record.get("val/headline"),
                 "run_dir": str(self.run_dir), "features": self._cache_identity()}
        write_checkpoint_folder(folder, lambda tmp: save_combiner(self.combiner, tmp, extra=extra), state)

    def _state(self, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "world_size": self.ctx.world_size,
            "config": self.config.to_dict(),
            "cache": self._cache_identity(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "loss": self.loss_fn.state_dict() if isinstance(self.loss_fn, nn.Module) else None,
            "rng": rng_states,
            "history": self.history,
            "best": self.best,
        }

    def _summary(self, status: str) -> dict[str, Any]:
        best_record = next((r for r in self.history if r["epoch"] == self.best.get("epoch") and "val/headline" in r),
                           {})
        last_eval = next((r for r in reversed(self.history) if "val/headline" in r), {})
        data = self.data
        return {
            "status": status,
            "epochs_completed": self.epoch,
            "steps": self.step,
            "config": self.config.to_dict(),
            "data": {
                "features": str(self.cache.root),
                "categories": data.gallery.category_names,
                "train_triplets": len(data),
                "gallery_size": len(data.gallery),
                "steps_per_epoch": self.steps_per_epoch,
                "processes": self.ctx.world_size,
                "skipped_without_target": data.skipped_without_target,
                "targets_added_to_gallery": data.targets_added_to_gallery,
            },
            "best": {"epoch": self.best.get("epoch"), "headline": self.best.get("headline"), "metrics": best_record},
            "last_eval": {"epoch": last_eval.get("epoch"), "headline": last_eval.get("val/headline"),
                          "metrics": last_eval},
        }

    # ---------------------------------------------------------------- processes
    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _sampler_counters(self) -> dict[str, float]:
        """The sampler's numeric counters since its last reset (empty without a sampler)."""
        if self.sampler is None:
            return {}
        counters = {}
        for key, value in dict(self.sampler.stats()).items():
            number = _as_float(value)
            if not math.isnan(number):
                counters[str(key)] = number
        return counters

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def _mean_over_processes(self, values: dict[str, float]) -> dict[str, float]:
        if not self.ctx.is_distributed:
            return values
        keys = sorted(values)
        tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor)
        return dict(zip(keys, (tensor / self.ctx.world_size).tolist()))

    def _sum_over_processes(self, values: dict[str, float]) -> dict[str, float]:
        if not self.ctx.is_distributed:
            return values
        gathered = self._gather(values)
        keys = sorted({key for part in gathered for key in part})
        return {key: (max if key in GAUGE_SAMPLER_STATS else sum)(part.get(key, 0.0) for part in gathered)
                for key in keys}

    def _gather(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order (every process calls this)."""
        if not self.ctx.is_distributed:
            return [obj]
        gathered: list[Any] = [None] * self.ctx.world_size
        dist.all_gather_object(gathered, obj)
        return gathered


def _as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else float("nan")
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def _nan_mean(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else None


def _describe(record: dict[str, Any], best: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    if record.get("train/loss") is not None:
        parts.append(f"loss {record['train/loss']:.4f}")
    if record.get("train/active_fraction") is not None:
        parts.append(f"active {record['train/active_fraction']:.2f}")
    if "val/headline" in record:
        parts.append(f"val {record['val/headline']:.2f} (best {best['headline']:.2f} at epoch {best['epoch']})")
    if record.get("time/epoch_s") is not None:
        parts.append(f"{record['time/epoch_s']:.1f} s")
    return "  ".join(parts)
