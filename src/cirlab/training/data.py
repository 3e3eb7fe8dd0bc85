"""Training data from a feature cache: the triplets, the gallery negatives are mined from, and batches.

The encoders are frozen at this stage, so everything a step needs is read from the cache once and
kept on the training device:

* the **training gallery** is every training image (``split_rows(c, "train")``) of the trained
  categories, deduplicated by row in category order (an image listed by two categories belongs to the
  first); each entry carries a category id and a duplicate group (images with equal content hashes
  share a group, unique ones have -1). A training target missing from the split lists is added to the
  gallery rather than dropped. Gallery features are L2-normalised once.
* each **training triplet** keeps its raw reference feature, the raw text features of its caption
  forms, its target's gallery position (the positive) and its category id.

:func:`epoch_batches` cuts one epoch into per-process batches with a permutation seeded by
``(seed, epoch)``: step ``s`` uses the same global batch whatever the number of processes, and process
``r`` takes the ``r``-th slice of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from cirlab.errors import CacheMismatchError
from cirlab.features.cache import FeatureCache

LOGGER = logging.getLogger(__name__)

TRAIN_SPLIT = "train"


@dataclass
class Gallery:
    """The training gallery: one entry per distinct training image."""

    rows: np.ndarray  # [G] int64, row of each entry in the cache's image_features
    categories: torch.Tensor  # [G] long, index into category_names
    category_names: list[str]  # the trained categories, in config order
    duplicate_groups: torch.Tensor  # [G] long, entries with identical pixels share an id; -1 when unique
    features: torch.Tensor  # [G, d] float32, L2-normalised image features

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class TrainingData:
    """Training triplets and their gallery, on one device."""

    gallery: Gallery
    positions: np.ndarray  # [T] int64, triplet positions in the cache's triplet table
    reference_features: torch.Tensor  # [T, d] float32, raw reference image features
    text_features: torch.Tensor  # [T, F, d] float32, raw text features of the F training caption forms
    positives: torch.Tensor  # [T] long, gallery position of each triplet's target
    categories: torch.Tensor  # [T] long, category id of each triplet (gallery.category_names order)
    skipped_without_target: int  # training triplets left out because the cache withholds their target
    targets_added_to_gallery: int  # targets absent from the split lists, added to the gallery

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return int(self.reference_features.shape[1])

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> Batch:
        """Features of the triplets at ``indices`` (into this object), one caption form drawn per triplet."""
        indices = indices.to(self.reference_features.device)
        forms = torch.randint(self.text_features.shape[1], (len(indices),), generator=generator,
                              device=generator.device).to(indices.device)
        return Batch(
            reference=self.reference_features[indices],
            text=self.text_features[indices, forms],
            positives=self.positives[indices],
            categories=self.categories[indices],
        )


@dataclass
class Batch:
    """What one training step consumes."""

    reference: torch.Tensor  # [B, d] raw reference image features
    text: torch.Tensor  # [B, d] raw text features of the drawn caption forms
    positives: torch.Tensor  # [B] gallery positions of the targets
    categories: torch.Tensor  # [B] category ids

    def __len__(self) -> int:
        return len(self.positives)


def training_categories(cache: FeatureCache, categories: list[str] | None) -> list[str]:
    """The categories to train on, checked against the cache (every one must have a train split)."""
    if categories is None:
        chosen = [c for c in cache.categories() if cache.has_split(c, TRAIN_SPLIT)]
        if not chosen:
            raise CacheMismatchError(f"{cache.root}: the feature cache holds no train split to train on")
        return chosen
    missing = [c for c in categories if not cache.has_split(c, TRAIN_SPLIT)]
    if missing:
        raise CacheMismatchError(f"{cache.root}: the feature cache holds no train split of "
                                 f"{', '.join(missing)}; it has {', '.join(cache.categories()) or 'no categories'}")
    return list(dict.fromkeys(categories))


def build_gallery_rows(cache: FeatureCache, categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Deduplicated training-image rows and their category ids (an image in two categories takes the first)."""
    rows: list[int] = []
    category_ids: list[int] = []
    seen: set[int] = set()
    for category_id, category in enumerate(categories):
        for row in cache.split_rows(category, TRAIN_SPLIT).tolist():
            if row not in seen:
                seen.add(row)
                rows.append(row)
                category_ids.append(category_id)
    return np.asarray(rows, dtype=np.int64), np.asarray(category_ids, dtype=np.int64)


def duplicate_groups(hashes: list[str]) -> np.ndarray:
    """Group id per entry: entries with the same non-empty hash share an id; the rest get -1."""
    counts: dict[str, int] = {}
    for value in hashes:
        if value:
            counts[value] = counts.get(value, 0) + 1
    group_of: dict[str, int] = {}
    groups = np.full(len(hashes), -1, dtype=np.int64)
    for position, value in enumerate(hashes):
        if value and counts[value] > 1:
            groups[position] = group_of.setdefault(value, len(group_of))
    return groups


def load_training_data(cache: FeatureCache, categories: list[str] | None, caption_forms: list[int],
                       device: torch.device) -> TrainingData:
    """Read the training triplets and gallery of ``categories`` from ``cache`` onto ``device``."""
    categories = training_categories(cache, categories)
    table = cache.triplets
    positions = table.select(categories, TRAIN_SPLIT)
    with_target = table.target_rows[positions] >= 0
    skipped = int((~with_target).sum())
    if skipped:
        LOGGER.warning("%s: %d training triplets have no target in the cache and are left out", cache.root, skipped)
    positions = positions[with_target]
    if len(positions) == 0:
        raise CacheMismatchError(f"{cache.root}: no training triplets with targets in {', '.join(categories)}")

    rows, gallery_categories = build_gallery_rows(cache, categories)
    category_id = {name: index for index, name in enumerate(categories)}
    position_of = {int(row): index for index, row in enumerate(rows.tolist())}
    target_rows = table.target_rows[positions]
    extra_rows, extra_categories = [], []
    for row, category in zip(target_rows.tolist(), table.categories[positions].tolist()):
        if row not in position_of:
            position_of[row] = len(rows) + len(extra_rows)
            extra_rows.append(row)
            extra_categories.append(category_id[category])
    if extra_rows:
        LOGGER.warning("%s: %d training targets are not in the train split lists; added to the gallery",
                       cache.root, len(extra_rows))
        rows = np.concatenate([rows, np.asarray(extra_rows, dtype=np.int64)])
        gallery_categories = np.concatenate([gallery_categories, np.asarray(extra_categories, dtype=np.int64)])

    hashes = [cache.image_hashes[row] for row in rows.tolist()]
    raw_gallery = torch.from_numpy(_float32(cache.image_features, rows))
    gallery = Gallery(
        rows=rows,
        categories=torch.from_numpy(gallery_categories).to(device),
        category_names=categories,
        duplicate_groups=torch.from_numpy(duplicate_groups(hashes)).to(device),
        features=torch.nn.functional.normalize(raw_gallery, dim=-1).to(device),
    )
    texts = np.asarray(cache.text_features[positions][:, caption_forms], dtype=np.float32)
    return TrainingData(
        gallery=gallery,
        positions=positions,
        reference_features=torch.from_numpy(_float32(cache.image_features, table.reference_rows[positions])).to(device),
        text_features=torch.from_numpy(texts).to(device),
        positives=torch.tensor([position_of[row] for row in target_rows.tolist()], dtype=torch.long, device=device),
        categories=torch.tensor([category_id[c] for c in table.categories[positions].tolist()], dtype=torch.long,
                                device=device),
        skipped_without_target=skipped,
        targets_added_to_gallery=len(extra_rows),
    )


def steps_per_epoch(num_triplets: int, batch_size: int, drop_last: bool) -> int:
    """Optimiser steps in one epoch of ``num_triplets`` with global batches of ``batch_size``."""
    if drop_last:
        return num_triplets // batch_size
    return -(-num_triplets // batch_size)


def epoch_batches(num_triplets: int, *, epoch: int, seed: int, batch_size: int, drop_last: bool,
                  rank: int = 0, world_size: int = 1) -> list[np.ndarray]:
    """This process's triplet indices for every step of ``epoch``.

    The epoch's order is a permutation seeded by ``(seed, epoch)``, cut into global batches of
    ``batch_size`` (the last one dropped when ``drop_last``); process ``rank`` of ``world_size`` takes
    the ``rank``-th of ``world_size`` equal slices of each global batch. Without ``drop_last`` the last
    batch is shortened to a multiple of ``world_size`` so that every process takes a step of the same
    size (at most ``world_size - 1`` triplets sit out that epoch).
    """
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
    order = np.random.default_rng([seed, epoch]).permutation(num_triplets)
    batches = []
    for step in range(steps_per_epoch(num_triplets, batch_size, drop_last)):
        global_batch = order[step * batch_size:(step + 1) * batch_size]
        per_rank = len(global_batch) // world_size
        if per_rank == 0:
            break
        batches.append(global_batch[rank * per_rank:(rank + 1) * per_rank])
    return batches


def _float32(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of a (memory-mapped) array as a contiguous float32 array, read in sorted order."""
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *array.shape[1:]), dtype=np.float32)
    out[order] = np.asarray(array[rows[order]], dtype=np.float32)
    return out
