"""Negatives mined while the encoders train: a training gallery re-encoded every N steps, and how stale it is.

In the combiner stage the gallery's features never change, so the samplers of :mod:`cirlab.negatives`
search fixed features. When ``cirlab finetune`` trains the image encoder the gallery moves; as ANCE
refreshes its index in dense retrieval, :class:`GalleryMining` re-encodes the training gallery every
``refresh_every`` optimiser steps (0: once, before the first step) and every step mines over the latest
refresh, through the same samplers, their contract and their false-negative guard (a sampler is built
anew over each refresh, since a sampler is a function of the gallery's features).

What a step does, and what it costs:

* **refresh** (when due, before the step's forward pass): every gallery image encoded once in eval mode.
  Under ``torchrun`` each process encodes a contiguous shard and the shards are gathered, after every
  process took the main process's buffers (batch-norm statistics), so that one model encodes the gallery.
* **mining**: the batch's queries (detached) against the refreshed gallery, ``k`` gallery indices per query.
  Under ``torchrun`` every process mines the whole global batch (every process's queries, in the order one
  process with the whole batch would hold them: ``DistributedSampler`` deals a batch's samples out to the
  processes in turn) with the same seeded generator and keeps its own rows, so the negatives are those of
  one process with the whole batch. A ``[B, N]`` product, small against encoding the batch.
* **the loss** (:class:`~cirlab.encoder_training.finetuning.CompositionContrast`): each query's ``k``
  negatives are extra columns of its cross-entropy, holding their refreshed features (no gradient flows into
  them), as the fixed gallery's features do in the combiner stage (:mod:`cirlab.losses.contrastive`).
  Encoding them afresh every step, as ANCE's trainer does, would multiply the images encoded per step by
  1 + k/2.

Staleness in the run log:

* per step: ``stale_steps``, the optimiser steps taken since the refresh the step mined from (0 on a
  refresh step), and on a refresh step ``refresh_drift``, the drift of the whole gallery since the previous
  refresh: 1 − the mean cosine between each image's old and new features (free: both are at hand);
* per epoch: ``mining/probe_drift``, the same drift measured at the epoch's end between the latest refresh
  and the current model on a fixed probe of :data:`PROBE_SIZE` gallery images (evenly spaced), which costs
  one eval-mode pass over the probe per epoch; ``mining/steps_since_refresh`` at that point; the number of
  refreshes and their time (``time/refresh_s``); and the sampler's counters and negative ledger
  (``sampler/...``), as in combiner training.

Exact resume: the refreshed features and the step they were encoded at are part of the checkpoint, and the
sampler's generator is one of the run's generators. (The weights of the refresh step are not kept, so the
features could not be derived again.) The checkpoint grows by the gallery's features: N × d float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cirlab.data import DatasetReader, MissingPolicy, Triplet
from cirlab.distributed import DistributedContext
from cirlab.encoder_training.encoding import encode_image_files, pixel_hashes
from cirlab.encoder_training.loop import StepPosition
from cirlab.encoder_training.options import ContrastOptions, TrainingOptions
from cirlab.engine.stats import Stopwatch
from cirlab.negatives import BatchInfo, Gallery, GallerySampler, ReferenceTargets, build_sampler
from cirlab.training.data import duplicate_groups

#: Gallery images whose drift is measured at the end of every epoch (evenly spaced over the gallery).
PROBE_SIZE = 256
#: The split whose images form the mining gallery.
TRAIN_SPLIT = "train"
#: Second entropy word of the sampler generator's seed (``SeedSequence([seed, this])``): a stream of its own.
NEGATIVES_STREAM = 1

T = TypeVar("T")


@dataclass
class GalleryRecords:
    """The training gallery before any encoding: every train image of the trained categories (in category
    order, an image listed twice belonging to the first), and where each training triplet's target and
    reference sit in it."""

    paths: list[Path]
    categories: Tensor  # [N] long, index into the data set's categories
    duplicate_groups: Tensor  # [N] long: images with identical pixels share a group; -1 when unique
    positives: Tensor  # [T] long, gallery index of each triplet's target
    references: Tensor  # [T] long, gallery index of each triplet's reference image, -1 when not a train image
    query_categories: Tensor  # [T] long, category of each triplet

    def __len__(self) -> int:
        return len(self.paths)

    def to(self, device: torch.device) -> GalleryRecords:
        """The same records with their tensors on ``device``."""
        return GalleryRecords(self.paths, self.categories.to(device), self.duplicate_groups.to(device),
                              self.positives.to(device), self.references.to(device),
                              self.query_categories.to(device))


def gallery_records(dataset: DatasetReader, triplets: Sequence[Triplet], policy: MissingPolicy | str, *,
                    ctx: DistributedContext, num_workers: int) -> GalleryRecords:
    """The gallery of ``triplets`` (the training triplets of ``dataset``): the train split's images of every
    category, plus any target missing from the split lists; exact duplicates found by pixel hash (each
    process hashes a shard)."""
    category_id = {name: index for index, name in enumerate(dataset.categories)}
    position: dict[str, int] = {}
    categories: list[int] = []

    def add(image_id: str, category: str) -> None:
        if image_id not in position:
            position[image_id] = len(categories)
            categories.append(category_id[category])

    for category in dataset.categories:
        for image_id in dataset.split_data(category, TRAIN_SPLIT, policy).image_ids:
            add(image_id, category)
    for triplet in triplets:
        add(triplet.target, triplet.category)
    paths = [dataset.image_path(image_id) for image_id in position]
    hashes = [value for part in sharded(ctx, len(paths), lambda s: pixel_hashes(paths[s], num_workers=num_workers))
              for value in part]
    return GalleryRecords(
        paths=paths,
        categories=torch.tensor(categories, dtype=torch.long),
        duplicate_groups=torch.from_numpy(duplicate_groups(hashes)),
        positives=torch.tensor([position[t.target] for t in triplets], dtype=torch.long),
        references=torch.tensor([position.get(t.reference, -1) for t in triplets], dtype=torch.long),
        query_categories=torch.tensor([category_id[t.category] for t in triplets], dtype=torch.long))


def sharded(ctx: DistributedContext, size: int, work: Callable[[slice], T]) -> list[T]:
    """``work`` of this process's contiguous share of ``range(size)``, gathered from every process in rank
    order (so concatenating the parts covers ``range(size)`` in order); ``work`` must return CPU values."""
    share = slice(size * ctx.rank // ctx.world_size, size * (ctx.rank + 1) // ctx.world_size)
    return ctx.gather(work(share))


class GalleryMining:
    """Negatives mined every step over a training gallery re-encoded every ``refresh_every`` steps.

    ``model`` is the CLIP model being trained (its ``encode_image`` encodes the gallery), ``preprocess`` the
    training image transform.
    """

    #: Statistics of every step (``steps.csv`` columns); see the module notes.
    step_stats: tuple[str, ...] = ("stale_steps", "refresh_drift", "sample_time_s")

    def __init__(self, records: GalleryRecords, contrast: ContrastOptions, *, model: nn.Module,
                 preprocess: Callable[[Any], Any], options: TrainingOptions, ctx: DistributedContext,
                 device: torch.device) -> None:
        self.records = records.to(device)
        self.contrast, self.model, self.preprocess = contrast, model, preprocess
        self.options, self.ctx, self.device = options, ctx, device
        self.reference_targets = ReferenceTargets.from_pairs(self.records.references, self.records.positives)
        self.stopwatch = Stopwatch(device)
        seed = int(np.random.SeedSequence([options.seed, NEGATIVES_STREAM]).generate_state(1)[0])
        self.generator = torch.Generator(device=device).manual_seed(seed)
        size = len(records)
        self.probe = torch.linspace(0, size - 1, min(PROBE_SIZE, size)).round().long().unique()
        self.gallery: Gallery | None = None  # the latest refresh
        self.sampler: GallerySampler | None = None  # built over self.gallery
        self.refreshed_at = -1  # step whose forward pass the latest refresh preceded
        self.last_step = -1  # the latest step mined for
        self._reset_epoch()

    # ---------------------------------------------------------------- a step
    def prepare(self, position: StepPosition) -> dict[str, float]:
        """Refresh the gallery when ``position``'s step is due (call before the step's forward pass); return
        the step's staleness statistics."""
        every = self.contrast.refresh_every
        drift = float("nan")
        if self.gallery is None or (every > 0 and position.step % every == 0):
            drift = self.refresh(position.step)
        self.last_step = position.step
        return {"stale_steps": float(position.step - self.refreshed_at), "refresh_drift": drift}

    def refresh(self, step: int) -> float:
        """Encode the whole gallery with the current model; return its drift since the previous refresh
        (NaN for the first)."""
        self._synchronize()
        started = time.perf_counter()
        features = F.normalize(self._encode(range(len(self.records)), "refreshing the mining gallery"), dim=-1)
        drift = float("nan")
        if self.gallery is not None:
            drift = float(1.0 - (self.gallery.features * features).sum(dim=1).mean())
        self._install(features)
        self.refreshed_at = step
        self._synchronize()
        self._refreshes += 1
        self._refresh_seconds += time.perf_counter() - started
        return drift

    def negatives(self, queries: Tensor, indices: Tensor, position: StepPosition) -> tuple[Tensor, dict[str, Any]]:
        """Features ``[b, k, d]`` of the negatives mined for this process's ``queries`` ``[b, d]`` of the
        training triplets ``indices`` ``[b]``, and the time mining took (timed on the device)."""
        started = self.stopwatch.start()
        indices = indices.to(self.device)
        records = self.records
        whole = self._whole_batch(queries.detach().float(), records.positives[indices],
                                  records.query_categories[indices], records.references[indices])
        queries_all, positives, categories, references = whole
        info = BatchInfo(categories=categories, progress=position.progress, references=references)
        chosen = self.sampler.sample(queries_all, positives, info, self.contrast.num_negatives, self.generator)
        mine = chosen.unflatten(0, (-1, self.ctx.world_size))[:, self.ctx.rank]
        return self.gallery.features[mine], {"sample_time_s": self.stopwatch.stop(started)}

    # ---------------------------------------------------------------- per epoch
    def epoch_stats(self) -> dict[str, float]:
        """The epoch's staleness, refreshes and sampler counters (the same on every process: each mined the
        whole batch); the counters start again for the next epoch."""
        stats = {"mining/refreshes": float(self._refreshes), "time/refresh_s": self._refresh_seconds,
                 "mining/steps_since_refresh": float(self.last_step + 1 - self.refreshed_at),
                 "mining/probe_drift": self.probe_drift()}
        stats.update({f"sampler/{key}": value for key, value in self._sampler_counters().items()})
        self._reset_epoch()
        if self.sampler is not None:
            self.sampler.reset_stats()
        return stats

    def probe_drift(self) -> float:
        """1 − the mean cosine between the probe images' refreshed features and their features now."""
        paths = [self.records.paths[i] for i in self.probe.tolist()]
        now = F.normalize(self._encode(range(len(paths)), "measuring the gallery's drift", paths), dim=-1)
        return float(1.0 - (self.gallery.features[self.probe.to(self.device)] * now).sum(dim=1).mean())

    # ---------------------------------------------------------------- checkpoint
    def generators(self) -> dict[str, torch.Generator]:
        return {"negatives": self.generator}

    def state_dict(self) -> dict[str, Any]:
        if self.gallery is None:
            return {}
        return {"mining": {"features": self.gallery.features.cpu(), "refreshed_at": self.refreshed_at}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mining = state.get("mining")
        if mining is not None:
            self._install(mining["features"].to(self.device))
            self.refreshed_at = int(mining["refreshed_at"])
        self._reset_epoch()

    # ---------------------------------------------------------------- helpers
    def _install(self, features: Tensor) -> None:
        """Make ``features`` (L2-normalised) the gallery and build the sampler over them, keeping the counters
        of the epoch so far."""
        if self.sampler is not None:
            self._carry(self.sampler)
        records = self.records
        self.gallery = Gallery(features, records.categories, records.duplicate_groups, self.reference_targets)
        self.sampler = build_sampler(self.contrast.negatives, self.gallery, **self.contrast.negatives_options)

    def _carry(self, sampler: GallerySampler) -> None:
        """Add the counters of a sampler about to be replaced to the epoch's (states by their maximum)."""
        for key, value in sampler.stats().items():
            merge = max if key in type(sampler).gauge_stats else sum
            self._carried[key] = merge((self._carried.get(key, 0.0), value))

    def _sampler_counters(self) -> dict[str, float]:
        if self.sampler is None:
            return dict(self._carried)
        self._carry(self.sampler)
        counters, self._carried = self._carried, {}
        return counters

    def _reset_epoch(self) -> None:
        self._refreshes, self._refresh_seconds = 0, 0.0
        self._carried: dict[str, float] = {}

    def _encode(self, rows: range, desc: str, paths: Sequence[Path] | None = None) -> Tensor:
        """Image features of ``paths`` (default: the gallery's) at ``rows``, un-normalised, on the device; each
        process encodes a shard with the main process's buffers."""
        paths = self.records.paths if paths is None else paths
        self._share_buffers()
        opts = self.options

        def encode(share: slice) -> Tensor | None:
            part = [paths[i] for i in rows[share]]
            if not part:
                return None
            return encode_image_files(self.model, part, self.preprocess, device=self.device,
                                      precision=opts.precision, batch_size=opts.eval_batch_size,
                                      num_workers=opts.num_workers, show_progress=opts.progress and self.ctx.is_main,
                                      desc=desc).cpu()

        return torch.cat([part for part in sharded(self.ctx, len(rows), encode) if part is not None]).to(self.device)

    def _share_buffers(self) -> None:
        """Give every process the main process's buffers (batch-norm statistics: under DDP each process has
        updated them with its own slice since the last forward pass)."""
        if not self.ctx.is_distributed:
            return
        buffers = dict(self.model.named_buffers())
        shared = self.ctx.broadcast({name: value.cpu() for name, value in buffers.items()})
        with torch.no_grad():
            for name, value in shared.items():
                buffers[name].copy_(value)

    def _whole_batch(self, *parts: Tensor) -> tuple[Tensor, ...]:
        """Each of ``parts`` (this process's rows) for the global batch, in one process's order: row ``i`` of
        process ``r`` is row ``i * world_size + r``."""
        if not self.ctx.is_distributed:
            return parts
        gathered = self.ctx.gather(tuple(part.cpu() for part in parts))
        return tuple(torch.stack([rows[n] for rows in gathered], dim=1).flatten(0, 1).to(self.device)
                     for n in range(len(parts)))

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
