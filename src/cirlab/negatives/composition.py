"""``composition``: the negatives only composed retrieval has, around the query's own reference image.

A composed query starts from a reference image, and an untrained combiner's query sits close to it: the
reference itself is the first thing a CIR model must learn to move away from (the caption asks for a change).
Around it lie other confusions no text or image retrieval task has: the targets of *other* queries on the
same reference (the same picture with another change) and near-duplicates of the reference (the same garment
re-shot). This sampler serves, per query, in this order:

1. the query's reference image (``BatchInfo.references``; absent when the reference is not a gallery item);
2. the targets of other training triplets with the same reference, most similar to the query first. They come
   from ``Gallery.reference_targets`` (every training triplet's pair) when the trainer provides it; without
   it, from the other queries of the batch that share the reference;
3. the reference's near-duplicates: items of its exact-duplicate group, and items whose feature cosine with
   the reference exceeds ``reference_threshold`` (default: the guard's near-duplicate threshold, 0.98; null:
   exact copies only), most similar to the reference first (up to ``k + GUARD_SLACK`` per query);

each item once, never the target or one of its guarded duplicates (the false-negative guard applies to every
candidate), cut to ``k``. When those run out, the remaining slots are drawn by another sampler, ``fill``
(``random`` by default, with ``fill_options``), asked for ``k`` picks so that those already chosen can be
skipped; a query still short gets uniform admissible items not yet chosen, and picks repeat only when the
gallery holds fewer than ``k`` admissible items.

Statistics: ``from_reference``, ``from_shared_reference`` and ``from_reference_near_duplicates`` count the
served negatives of each kind; ``fallback_negatives`` the slots filled by ``fill`` or the exact completion;
``guard_exact_duplicates`` / ``guard_near_duplicates`` the duplicates of the target among the first ``k``
candidates of the unguarded list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler, build_sampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD
from cirlab.negatives.mixed import complete_distinct, first_occurrences
from cirlab.negatives.scan import GUARD_SLACK, RunningTopK, compact, scan_gallery

REFERENCE, SHARED_REFERENCE, REFERENCE_NEAR_DUPLICATE = 0, 1, 2
#: The counter of each candidate source, in source order.
SOURCE_STATS: tuple[str, ...] = ("from_reference", "from_shared_reference", "from_reference_near_duplicates")


@SAMPLERS.register("composition")
class CompositionSampler(GallerySampler):
    """CIR-only negatives: the query's reference, other targets of that reference, the reference's near-duplicates.

    Args:
        reference_threshold: feature cosine with the reference above which an item is its near-duplicate
            (null: only its exact copies).
        fill: the sampler of the slots left when those run out (any registered name).
        fill_options: keyword options of ``fill``.
        near_duplicate_threshold, chunk_size, ledger_margin: also passed to ``fill`` (its own options win).
    """

    logged_stats = (*COMMON_STATS, *SOURCE_STATS)

    def __init__(self, gallery: Gallery, reference_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 fill: str = "random", fill_options: Mapping[str, Any] | None = None,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        if reference_threshold is not None and not -1.0 <= float(reference_threshold) <= 1.0:
            raise ConfigError(f"composition sampler: reference_threshold must be a cosine in [-1, 1] or null, "
                              f"got {reference_threshold}")
        self.reference_threshold = None if reference_threshold is None else float(reference_threshold)
        self.fill_name, self.fill_options = str(fill), dict(fill_options or {})
        shared: dict[str, Any] = {"near_duplicate_threshold": near_duplicate_threshold, "chunk_size": chunk_size}
        if ledger_margin is not None:
            shared["ledger_margin"] = ledger_margin
        self.filler = build_sampler(self.fill_name, gallery, **{**shared, **self.fill_options})

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        references = batch.references if batch.references is not None else torch.full_like(positives, -1)
        sources = [
            (references[:, None], (references >= 0)[:, None]),
            self._shared_reference(queries, positives, references),
            self._reference_near_duplicates(references, k),
        ]
        candidates = torch.cat([items for items, _ in sources], dim=1)
        valid = torch.cat([ok for _, ok in sources], dim=1)
        labels = torch.cat([torch.full_like(items, source) for source, (items, _) in enumerate(sources)], dim=1)

        flags = self.guard.flags(positives, candidates.clamp(min=0))
        unguarded = first_occurrences(candidates, valid & ~flags.positive)
        would_pick = unguarded & (unguarded.long().cumsum(dim=1) <= k)
        self.add_guard_counts(would_pick & flags.exact, would_pick & flags.near)
        keep = first_occurrences(candidates, valid & ~flags.excluded)
        picks, picks_valid = compact(candidates, keep, k)
        picked_labels, _ = compact(labels, keep, k)
        for source, name in enumerate(SOURCE_STATS):
            self.count(name, (picks_valid & (picked_labels == source)).sum())
        found = picks_valid.sum(dim=1)
        self.count("fallback_negatives", (k - found).sum())

        short = found < k
        if bool(short.any()):
            rows = short.nonzero(as_tuple=True)[0]
            filled = self.filler.sample(queries[rows], positives[rows], batch.select(rows), k, generator)
            merged = torch.cat([picks[rows], filled], dim=1)
            merged_valid = torch.cat([picks_valid[rows], torch.ones_like(filled, dtype=torch.bool)], dim=1)
            picks[rows], _, _ = complete_distinct(self.gallery, self.guard, self.chunk_size, positives[rows],
                                                  merged, merged_valid, k, generator)
        return picks

    def _shared_reference(self, queries: Tensor, positives: Tensor, references: Tensor) -> tuple[Tensor, Tensor]:
        """Targets of other triplets with each query's reference, most similar to the query first."""
        table = self.gallery.reference_targets
        if table is not None:
            targets, valid = table.lookup(references)
        else:  # only the batch is known: the targets of its other queries on the same reference
            size = positives.shape[0]
            valid = (references[:, None] == references[None, :]) & (references[:, None] >= 0)
            valid &= ~torch.eye(size, dtype=torch.bool, device=positives.device)
            targets = torch.where(valid, positives[None, :].expand(size, -1), -1)
        similarity = (self.gallery.features[targets.clamp(min=0)] * queries[:, None, :]).sum(dim=2)
        order = similarity.masked_fill(~valid, float("-inf")).sort(dim=1, descending=True, stable=True).indices
        return targets.gather(1, order), valid.gather(1, order)

    def _reference_near_duplicates(self, references: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Exact copies and near-duplicates of each query's reference (not the reference itself), closest first."""
        present = references >= 0
        anchors = references.clamp(min=0)
        groups = self.gallery.duplicate_groups
        anchor_groups = torch.where(present, groups[anchors], torch.full_like(anchors, -1))
        width = min(k + GUARD_SLACK, len(self.gallery))
        nearest = RunningTopK(references.shape[0], width, fill=float("-inf"), dtype=self.gallery.features.dtype,
                              device=references.device)
        for chunk in scan_gallery(self.gallery, anchors, self.gallery.features[anchors], self.chunk_size):
            copy = (groups[chunk.start:chunk.stop][None, :] == anchor_groups[:, None]) & (anchor_groups[:, None] >= 0)
            near = copy if self.reference_threshold is None else copy | (chunk.cosines > self.reference_threshold)
            near &= present[:, None] & (chunk.columns[None, :] != anchors[:, None])
            nearest.update(chunk.cosines.masked_fill_(~near, float("-inf")), chunk.columns)
        _, indices, valid = nearest.result()
        return indices, valid

    def reset_stats(self) -> None:
        super().reset_stats()
        if hasattr(self, "filler"):
            self.filler.reset_stats()

    def options(self) -> dict[str, Any]:
        return {"reference_threshold": self.reference_threshold, "fill": self.fill_name,
                "fill_options": self.fill_options}
