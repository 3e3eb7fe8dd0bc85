"""Training data from a feature cache: the triplets, the gallery negatives are mined from, and batches.

The encoders are frozen at this stage, so everything a step needs is read from the cache once and
kept on the training device:

* the **training gallery** is every training image (``split_rows(c, "train")``) of the trained
  categories, deduplicated by row in category order (an image listed by two categories belongs to the
  first); each entry carries a category id and a duplicate group (images with equal content hashes
  share a group, unique ones have -1). A training target missing from the split lists is added to the
  gallery rather than dropped. Gallery features are L2-normalised once.
* each **training triplet** keeps its raw reference feature, the raw text features of its caption
  forms, its target's gallery position (the positive), its reference image's gallery position (for the
  negative ledger; -1 when the reference is not a training image) and its category id.
* on the synthetic benchmark (the cache's ``data_root`` holds a ``synth_meta.json`` that describes its
  training triplets), the ground truth of which gallery items satisfy each triplet as well as its
  target does (:func:`synthetic_true_matches`), so that the ledger can count the true false negatives
  a sampler serves. On other data sets there is none.

:func:`epoch_batches` cuts one epoch into per-process batches with a permutation seeded by
``(seed, epoch)``: step ``s`` uses the same global batch whatever the number of processes, and process
``r`` takes the ``r``-th slice of it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cirlab.data.jsonfiles import read_json
from cirlab.errors import CacheMismatchError, DataError
from cirlab.features.cache import IMAGES_FILE, TEXTS_FILE, FeatureCache

if TYPE_CHECKING:
    from cirlab.negatives.gallery import SoftPositives
    from cirlab.negatives.ledger import TrueMatches

LOGGER = logging.getLogger(__name__)

TRAIN_SPLIT = "train"
_ROWS_SHOWN = 5  # rows named in a non-finite-feature error


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
    references: torch.Tensor  # [T] long, gallery position of each triplet's reference image, -1 when absent
    categories: torch.Tensor  # [T] long, category id of each triplet (gallery.category_names order)
    true_matches: TrueMatches | None  # per triplet, the gallery items that satisfy it (synthetic data only)
    soft_positives: SoftPositives | None  # per target, annotated other positives (CIRR's target_soft), if any
    skipped_without_target: int  # training triplets left out because the cache withholds their target
    targets_added_to_gallery: int  # targets absent from the split lists, added to the gallery

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return int(self.reference_features.shape[1])

    def batch(self, indices: torch.Tensor, generator: torch.Generator, *, rank: int = 0,
              world_size: int = 1) -> Batch:
        """Features of the triplets at ``indices`` (into this object), one caption form drawn per triplet.

        Under ``world_size`` processes ``indices`` is slice ``rank`` of a global batch: every process draws the
        forms of the whole global batch from the same stream and keeps its slice's, so that a triplet's form does
        not depend on the number of processes."""
        indices = indices.to(self.reference_features.device)
        size = len(indices)
        forms = torch.randint(self.text_features.shape[1], (size * world_size,), generator=generator,
                              device=generator.device)[rank * size:(rank + 1) * size].to(indices.device)
        return Batch(
            reference=self.reference_features[indices],
            text=self.text_features[indices, forms],
            positives=self.positives[indices],
            categories=self.categories[indices],
            references=self.references[indices],
            true_matches=None if self.true_matches is None else self.true_matches.rows(indices),
        )


@dataclass
class Batch:
    """What one training step consumes."""

    reference: torch.Tensor  # [B, d] raw reference image features
    text: torch.Tensor  # [B, d] raw text features of the drawn caption forms
    positives: torch.Tensor  # [B] gallery positions of the targets
    categories: torch.Tensor  # [B] category ids
    references: torch.Tensor  # [B] gallery positions of the reference images, -1 when absent
    true_matches: TrueMatches | None = None  # which gallery items satisfy each triplet (synthetic data only)

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


def training_forms(cache: FeatureCache, caption_forms: list[int] | None) -> list[int]:
    """The caption forms training draws from: ``caption_forms`` (positions in the cache's ``caption_forms``), or
    every form of the cache when ``None`` (FashionIQ: its four, CIRR: its one caption). A form the cache does not
    hold is refused in one line."""
    held = len(cache.caption_forms)
    if caption_forms is None:
        return list(range(held))
    outside = [form for form in caption_forms if not 0 <= form < held]
    if outside:
        raise CacheMismatchError(f"{cache.root}: caption form {outside[0]} is not in the feature cache, whose "
                                 f"{cache.dataset} triplets have {held} ({', '.join(cache.caption_forms)}); "
                                 f"choose caption_forms among 0..{held - 1}")
    return list(caption_forms)


def load_training_data(cache: FeatureCache, categories: list[str] | None, caption_forms: list[int] | None,
                       device: torch.device) -> TrainingData:
    """Read the training triplets and gallery of ``categories`` from ``cache`` onto ``device``, with the text
    features of the ``caption_forms`` training draws from (every form of the cache when ``None``)."""
    caption_forms = training_forms(cache, caption_forms)
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
    gallery_values = _float32(cache.image_features, rows)
    reference_rows = table.reference_rows[positions]
    reference_values = _float32(cache.image_features, reference_rows)
    texts = np.asarray(cache.text_features[positions][:, caption_forms], dtype=np.float32)
    require_finite(cache, IMAGES_FILE, gallery_values, rows)
    require_finite(cache, IMAGES_FILE, reference_values, reference_rows)
    require_finite(cache, TEXTS_FILE, texts, positions)
    raw_gallery = torch.from_numpy(gallery_values)
    gallery = Gallery(
        rows=rows,
        categories=torch.from_numpy(gallery_categories).to(device),
        category_names=categories,
        duplicate_groups=torch.from_numpy(duplicate_groups(hashes)).to(device),
        features=torch.nn.functional.normalize(raw_gallery, dim=-1).to(device),
    )
    true_matches = synthetic_true_matches(cache, positions, rows)
    soft_positives = annotated_soft_positives(cache, positions, position_of, len(rows), device)
    return TrainingData(
        gallery=gallery,
        positions=positions,
        reference_features=torch.from_numpy(reference_values).to(device),
        text_features=torch.from_numpy(texts).to(device),
        positives=torch.tensor([position_of[row] for row in target_rows.tolist()], dtype=torch.long, device=device),
        references=torch.tensor([position_of.get(row, -1) for row in reference_rows.tolist()], dtype=torch.long,
                                device=device),
        categories=torch.tensor([category_id[c] for c in table.categories[positions].tolist()], dtype=torch.long,
                                device=device),
        true_matches=None if true_matches is None else true_matches.to(device),
        soft_positives=soft_positives,
        skipped_without_target=skipped,
        targets_added_to_gallery=len(extra_rows),
    )


def annotated_soft_positives(cache: FeatureCache, positions: np.ndarray, position_of: dict[int, int],
                             size: int, device: torch.device) -> SoftPositives | None:
    """The false-negative guard's table of annotated positives: for each training target, the gallery items that
    a triplet of it scores positively in the data set's soft targets (CIRR's ``target_soft``); ``None`` when no
    training triplet has any (FashionIQ)."""
    from cirlab.negatives.gallery import SoftPositives

    table = cache.triplets
    targets, items = [], []
    for position in positions.tolist():
        target = position_of.get(int(table.target_rows[position]), -1)
        for row, score in table.soft_targets[position].items():
            if score > 0 and row in position_of:
                targets.append(target)
                items.append(position_of[row])
    if not targets:
        return None
    return SoftPositives.from_pairs(torch.tensor(targets), torch.tensor(items), size).to(device)


def require_finite(cache: FeatureCache, file_name: str, values: np.ndarray, rows: np.ndarray) -> None:
    """Refuse features that hold NaN or infinity, naming the cache file and its first such rows.

    ``values[i]`` is row ``rows[i]`` of ``file_name`` in ``cache``. Without this check a damaged
    feature surfaces many steps later as a NaN loss that looks like a learning-rate problem.
    """
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not bad.any():
        return
    bad_rows = np.unique(rows[bad]).tolist()
    shown = ", ".join(str(row) for row in bad_rows[:_ROWS_SHOWN])
    more = f" and {len(bad_rows) - _ROWS_SHOWN} more" if len(bad_rows) > _ROWS_SHOWN else ""
    rows_hold = f"row {shown} holds" if len(bad_rows) == 1 else f"rows {shown}{more} hold"
    raise CacheMismatchError(f"{cache.root / file_name}: {rows_hold} NaN or infinite features (damaged or "
                             f"overflowed in extraction); extract the cache again with --overwrite")


def synthetic_true_matches(cache: FeatureCache, positions: np.ndarray, gallery_rows: np.ndarray) -> TrueMatches | None:
    """Which gallery items satisfy each training triplet as well as its target does, from ``synth_meta.json``.

    Returns None when the cache's data set (its manifest's ``data_root``) has no ``synth_meta.json``
    (real data) or one that does not describe the cache's training triplets (a warning says so).

    The rule is the synthetic benchmark's own (:mod:`cirlab.synth.ambiguity`): a gallery item satisfies
    the query as well as the target does when it is of the triplet's category, has the target's value
    on every attribute that did not change or that the captions cover, and not the reference's on a
    changed attribute that the captions leave open (:func:`~cirlab.synth.ambiguity.satisfying_values`).
    The target and its exact duplicates always qualify, though the guard never serves them; the others
    are family members that differ from the target only where the captions leave it open and, at a
    raised ambiguity level, twins (same attributes, another picture). The rules are bit sets
    (:class:`~cirlab.negatives.ledger.TrueMatches`), one bit per category and attribute value.
    """
    from cirlab.synth.output import GENERATOR_NAME, META_FILE

    data_root = cache.manifest.get("data_root")
    path = Path(data_root) / META_FILE if data_root else None
    if path is None or not path.is_file():
        return None
    try:
        meta = read_json(path)
        if not isinstance(meta, dict) or meta.get("generator") != GENERATOR_NAME:
            raise ValueError(f"not a {GENERATOR_NAME!r} record")
        return _true_matches_from_meta(meta, cache, positions, gallery_rows)
    except (DataError, KeyError, IndexError, TypeError, ValueError) as error:
        LOGGER.warning("%s: not used for the ledger's true false negatives (%s)", path, error)
        return None


def _true_matches_from_meta(meta: dict[str, Any], cache: FeatureCache, positions: np.ndarray,
                            gallery_rows: np.ndarray) -> TrueMatches:
    """The rules of :func:`synthetic_true_matches`; ValueError when ``meta`` does not describe the cache."""
    from cirlab.negatives.ledger import TrueMatches
    from cirlab.synth.ambiguity import left_open

    bits = _ValueBits(meta)
    table, ids = cache.triplets, cache.image_ids
    ruled_out = []
    for position in positions.tolist():
        category, file_index = str(table.categories[position]), int(table.file_index[position])
        record = meta["triplets"][f"{category}.{TRAIN_SPLIT}"][file_index]
        reference, target = ids[table.reference_rows[position]], ids[table.target_rows[position]]
        if (record["candidate"], record["target"]) != (reference, target):
            raise ValueError(f"its training triplet {category} #{file_index} is {record['candidate']} -> "
                             f"{record['target']}, the cache's is {reference} -> {target}")
        ruled_out.append(bits.ruled_out(reference, target, left_open(record)))
    item_bits = [bits.of(ids[row]) if ids[row] in bits.images else _ValueBits.UNKNOWN for row in gallery_rows.tolist()]
    return TrueMatches(torch.tensor(item_bits, dtype=torch.long), torch.tensor(ruled_out, dtype=torch.long))


class _ValueBits:
    """One bit per facet value of ``synth_meta.json`` images (see :class:`~cirlab.negatives.ledger.TrueMatches`).

    Bit 0 marks images the ground truth does not list (every rule rules it out), then come the
    categories, then each attribute's values by their position in the category's vocabulary.
    """

    UNKNOWN = 1

    def __init__(self, meta: dict[str, Any]) -> None:
        self.images: dict[str, Any] = meta["images"]
        self.attributes: list[str] = list(meta["attributes"])
        self.vocabulary: dict[str, dict[str, list[str]]] = meta["vocabulary"]
        self.categories = list(self.vocabulary)
        self.widths = [len(self.categories), *(max(len(values[a]) for values in self.vocabulary.values())
                                               for a in self.attributes)]
        self.offsets = [1 + sum(self.widths[:facet]) for facet in range(len(self.widths))]
        if 1 + sum(self.widths) > 63:
            raise ValueError(f"{1 + sum(self.widths)} category and attribute values do not fit one 64-bit set")

    def of(self, image_id: str) -> int:
        """The value bits of ``image_id`` (KeyError when the ground truth does not list it)."""
        record = self.images[image_id]
        category = record["category"]
        codes = [self.categories.index(category),
                 *(self.vocabulary[category][a].index(record["attributes"][a]) for a in self.attributes)]
        return sum(1 << (offset + code) for offset, code in zip(self.offsets, codes))

    def ruled_out(self, reference: str, target: str, left_open: Collection[str]) -> int:
        """The bits an item satisfying the triplet cannot have: another category, and every attribute value
        that :func:`~cirlab.synth.ambiguity.satisfying_values` does not allow."""
        from cirlab.synth.ambiguity import satisfying_values

        category = self.images[target]["category"]
        vocabulary = {a: self.vocabulary[category][a] for a in self.attributes}
        allowed = satisfying_values(vocabulary, self.images[reference]["attributes"],
                                    self.images[target]["attributes"], left_open)
        kept = [1 << (self.offsets[0] + self.categories.index(category)),
                *(sum(1 << (offset + vocabulary[a].index(value)) for value in allowed[a])
                  for a, offset in zip(self.attributes, self.offsets[1:]))]
        ruled = self.UNKNOWN
        for offset, width, keep in zip(self.offsets, self.widths, kept):
            ruled |= (((1 << width) - 1) << offset) & ~keep
        return ruled


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
