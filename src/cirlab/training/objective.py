"""Combiner training as an objective of the engine: cached features in, a trained combiner out.

One step, for a batch of training triplets:

1. the combiner maps (reference image features, text features of a caption form drawn uniformly per
   triplet) to query embeddings;
2. the negative sampler picks ``num_negatives`` gallery indices per query over the **whole** training
   gallery, looking at the detached queries (the gallery is fixed: the encoders are frozen);
3. the loss scores (queries, target features, negative features); the engine's AdamW, schedule,
   clipping and mixed precision update the combiner.

The FashionIQ validation protocol runs before training and every ``eval_every`` epochs (and after
the last); the best evaluation by the headline (mean of Recall@10 and Recall@50) is kept in ``best/``.

Under ``torchrun`` every process takes its slice of each global batch (:func:`~cirlab.training.data.epoch_batches`),
gradients are averaged by DistributedDataParallel, and the sampler's counters are summed over processes.
The contrastive losses score each query against the targets of the whole global batch (``gather_batch``, on by
default): every process gathers the other processes' targets and computes its own rows of the global batch's
loss, as open_clip's ``--gather-with-grad --local-loss`` does, so that the averaged gradient is one process's at
the same batch size; with ``gather_batch: false`` they see the process's own slice only. Mined negatives come
from the whole gallery whatever the number of processes and stay with their query's row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cirlab.distributed import DistributedContext, wrap_ddp
from cirlab.engine import ObjectiveBase, StepOutput
from cirlab.engine.checkpoint import LAST, STATE_FILE
from cirlab.engine.optim import uniform_groups
from cirlab.engine.stats import Elapsed, Stopwatch
from cirlab.errors import ConfigError
from cirlab.evaluation.ranks import (
    RANKS_FILE,
    EvaluationRanks,
    evaluation_name,
    ranks_of,
    read_ranks,
    write_ranks,
)
from cirlab.features.cache import FeatureCache
from cirlab.features.identity import check_identity
from cirlab.runtime import autocast, seed_everything
from cirlab.training.config import IN_BATCH, TrainConfig
from cirlab.training.data import Batch, TrainingData, epoch_batches, load_training_data, steps_per_epoch

#: The validation metric that picks ``best/``.
SELECTION_METRIC = "val/headline"


class CombinerObjective(ObjectiveBase):
    """One combiner run's data, combiner, loss, sampler, generators and validation protocol."""

    selection = SELECTION_METRIC

    def __init__(self, config: TrainConfig, cache: FeatureCache, device: torch.device,
                 ctx: DistributedContext) -> None:
        from cirlab.combiners import build_combiner
        from cirlab.losses import build_loss

        self.config, self.cache, self.device, self.ctx = config, cache, device, ctx
        if config.batch_size % ctx.world_size:
            raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {ctx.world_size} processes")
        seed_everything(config.seed)  # the same initial weights on every process
        self.data: TrainingData = load_training_data(cache, config.categories, config.caption_forms, device)
        self._steps_per_epoch = steps_per_epoch(len(self.data), config.batch_size, config.drop_last)
        if self._steps_per_epoch == 0:
            raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(self.data)} training triplets "
                              f"with drop_last; lower batch_size or set drop_last: false")
        self.total_steps = self._steps_per_epoch * config.epochs
        self.combiner: nn.Module = build_combiner(config.combiner, self.data.dim, **config.combiner_options).to(device)
        self.loss_fn = build_loss(config.loss, **config.loss_options)
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.to(device)
        self.sampler = self._build_sampler()
        self.stopwatch = Stopwatch(device)
        self.step_stats = (*type(self.loss_fn).logged_stats, "sample_time_s")
        self.model = wrap_ddp(self.combiner, ctx, device)
        self.loss_model = wrap_ddp(self.loss_fn, ctx, device) if isinstance(self.loss_fn, nn.Module) else self.loss_fn

        # Different streams per process (their shards differ), reproducible from the seed.
        _, sampler_seed, global_seed = np.random.SeedSequence([config.seed, ctx.rank]).generate_state(3)
        # Caption forms are drawn alike on every process, which keeps its slice's (TrainingData.batch).
        batch_seed = np.random.SeedSequence([config.seed, 0]).generate_state(3)[0]
        self.batch_generator = torch.Generator().manual_seed(int(batch_seed))
        self.sampler_generator = torch.Generator(device=device).manual_seed(int(sampler_seed))
        seed_everything(int(global_seed))  # dropout masks differ between processes
        self.validation = None
        if ctx.is_main:
            from cirlab.evaluation.protocol import build_protocol, evaluated_categories

            val_categories = evaluated_categories(cache, config.val_categories, config.categories, config.val_split)
            self.validation = build_protocol(cache, config.val_split, categories=val_categories, device=device,
                                             batch_size=config.eval_batch_size)
        self.progress = 0.0  # share of training done at the current batch (set by batches())
        #: Per-query ranks of every validation so far, by evaluation name (written to RUN/ranks.npz).
        self.evaluations: dict[str, EvaluationRanks] = {}
        #: Which queries the validation ranked and which it left out, as `cirlab eval` reports them.
        self.query_accounting: dict[str, Any] = {}

    def _build_sampler(self) -> Any:
        if self.config.negatives == IN_BATCH:
            return None
        from cirlab.negatives import Gallery, build_sampler
        from cirlab.negatives.gallery import ReferenceTargets

        gallery = self.data.gallery
        pairs = ReferenceTargets.from_pairs(self.data.references, self.data.positives)
        return build_sampler(self.config.negatives, Gallery(gallery.features, gallery.categories,
                                                            gallery.duplicate_groups, pairs,
                                                            self.data.soft_positives),
                             **self.config.negatives_options)

    # ---------------------------------------------------------------- the engine's contract
    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        modules = [self.combiner, *([self.loss_fn] if isinstance(self.loss_fn, nn.Module) else [])]
        return uniform_groups(modules, weight_decay)

    def train_modules(self) -> list[nn.Module]:
        return [self.model, *([self.loss_model] if isinstance(self.loss_model, nn.Module) else [])]

    def generators(self) -> dict[str, torch.Generator]:
        return {"batch": self.batch_generator, "sampler": self.sampler_generator}

    def batches(self, epoch: int) -> Iterator[Batch]:
        config = self.config
        if self.sampler is not None:
            self.sampler.reset_stats()
        order = epoch_batches(len(self.data), epoch=epoch, seed=config.seed, batch_size=config.batch_size,
                              drop_last=config.drop_last, rank=self.ctx.rank, world_size=self.ctx.world_size)
        for position, indices in enumerate(order):
            # the share of training done, for samplers with a schedule (the curriculum)
            self.progress = ((epoch - 1) * self._steps_per_epoch + position) / max(1, self.total_steps)
            yield self.data.batch(torch.from_numpy(indices), self.batch_generator, rank=self.ctx.rank,
                                  world_size=self.ctx.world_size)

    def step(self, batch: Batch) -> StepOutput:
        with autocast(self.device, self.config.precision):
            queries = self.model(batch.reference, batch.text)
        queries = queries.float()
        gallery = self.data.gallery.features
        positives = gallery[batch.positives]
        negatives, sample_time = None, 0.0
        if self.sampler is not None:
            negatives, sample_time = self._mine(queries, batch)
        output = self.loss_model(queries, positives, negatives, **self._batch_targets(positives))
        return StepOutput(output.loss, {**(output.stats or {}), "sample_time_s": sample_time})

    def _batch_targets(self, positives: torch.Tensor) -> dict[str, torch.Tensor]:
        """``other_targets`` for a loss that scores every target of the batch, under ``torchrun`` with
        ``gather_batch``: the targets of the other processes' slices of the global batch, gathered with their
        gradients (:meth:`~cirlab.distributed.DistributedContext.gather_with_grad`). Nothing otherwise."""
        if not (self.config.gather_batch and self.ctx.is_distributed and type(self.loss_fn).scores_batch_targets):
            return {}
        gathered = self.ctx.gather_with_grad(positives)  # every process's slice, in rank order
        start, end = self.ctx.rank * positives.shape[0], (self.ctx.rank + 1) * positives.shape[0]
        return {"other_targets": torch.cat([gathered[:start], gathered[end:]])}

    def _mine(self, queries: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, float | Elapsed]:
        """Negatives of ``batch`` over the whole gallery, and the time mining took (timed on the device, without
        waiting for it)."""
        from cirlab.negatives import BatchInfo

        started = self.stopwatch.start()
        # References and true matches only feed the sampler's negative ledger.
        info = BatchInfo(categories=batch.categories, progress=self.progress,
                         references=batch.references, true_matches=batch.true_matches)
        with torch.no_grad():
            indices = self.sampler.sample(queries.detach(), batch.positives, info, self.config.num_negatives,
                                          self.sampler_generator)
        negatives = self.data.gallery.features[indices]
        return negatives, self.stopwatch.stop(started)

    def epoch_stats(self) -> dict[str, float]:
        if self.sampler is None:
            return {}
        counters = {key: value for key, value in self.sampler.stats().items() if not math.isnan(value)}
        summed = self.ctx.sum(counters, take_max=frozenset(self.sampler.gauge_stats))
        return {f"sampler/{key}": value for key, value in summed.items()}

    def evaluate(self, epoch: int) -> dict[str, float]:
        result = self.validation.evaluate(self.combiner, show_progress=False)
        self.evaluations[evaluation_name(self.config.val_split, epoch)] = ranks_of(result)
        write_ranks(Path(self.config.out) / RANKS_FILE, self.evaluations)
        self.query_accounting = {**result.query_accounting(), "ranks_file": RANKS_FILE}
        metrics = {"val/headline": float(result.headline)}
        for name, value in result.metrics.items():
            metrics[f"val/mean/{name}"] = float(value)
        for category, category_result in result.per_category.items():
            for name, value in category_result.metrics().items():
                metrics[f"val/{category}/{name}"] = float(value)
        return metrics

    def save(self, folder: Path, record: dict[str, Any]) -> None:
        from cirlab.combiners import save_combiner

        extra = {"epoch": record["epoch"], "step": record["step"], "val_headline": record.get(SELECTION_METRIC),
                 "run_dir": str(self.config.out), "features": self.cache.identity()}
        save_combiner(self.combiner, folder, extra=extra)

    def load(self, folder: Path) -> None:
        from cirlab.combiners import load_combiner

        self.combiner.load_state_dict(load_combiner(folder, device=str(self.device)).state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"features": self.cache.identity(),
                "loss": self.loss_fn.state_dict() if isinstance(self.loss_fn, nn.Module) else None,
                "evaluations": list(self.evaluations)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        check_identity(state.get("features"), self.cache, what=Path(self.config.out) / LAST / STATE_FILE,
                       hint="resume on the feature cache the run was trained on, or start a new run")
        if isinstance(self.loss_fn, nn.Module) and state.get("loss"):
            self.loss_fn.load_state_dict(state["loss"])
        path = Path(self.config.out) / RANKS_FILE
        if self.ctx.is_main and path.is_file():  # keep the evaluations the checkpoint covers, drop any after it
            kept = set(state.get("evaluations") or [])
            self.evaluations = {name: ranks for name, ranks in read_ranks(path).items() if name in kept}

    def summary(self) -> dict[str, Any]:
        data = self.data
        return {"evaluation": self.query_accounting, "data": {
            "features": str(self.cache.root),
            "categories": data.gallery.category_names,
            "train_triplets": len(data),
            "gallery_size": len(data.gallery),
            "steps_per_epoch": self._steps_per_epoch,
            "processes": self.ctx.world_size,
            "skipped_without_target": data.skipped_without_target,
            "targets_added_to_gallery": data.targets_added_to_gallery,
        }}
