"""A protocol's gallery and queries resolved against a feature cache: row numbers and positions, no features.

Every protocol (:mod:`cirlab.evaluation.protocol`) ranks the queries of one category and split against one
gallery. This module finds them in the cache once, with the accounting that keeps every query visible:

- a triplet left out of the cache by the missing-image policy ``skip`` is absent from the denominator and
  counted (reason ``missing_image``, from the manifest's ``missing`` report);
- a triplet without a target (a test split) is absent from the denominator and counted
  (``target_withheld``) — unless the protocol keeps such queries (a test-server submission ranks them);
- a triplet whose target is not in the gallery is **kept** and counts as a miss at every K; one whose
  reference is not in the gallery is kept and ranked normally (its features come from the cache). Both
  are counted (``outside_gallery``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cirlab.data.missing import MissingReport
from cirlab.errors import CacheMismatchError
from cirlab.evaluation.results import (
    EXCLUDED_MISSING_IMAGE,
    EXCLUDED_TARGET_WITHHELD,
    OUTSIDE_REFERENCE,
    OUTSIDE_TARGET,
)
from cirlab.features.cache import FeatureCache

#: Key of the missing-image report (:meth:`MissingReport.to_dict`) in a cache manifest.
MANIFEST_MISSING_KEY = "missing"


@dataclass(frozen=True)
class CategoryQueries:
    """One category's gallery and queries, resolved against a feature cache (row numbers, no features)."""

    category: str
    gallery_rows: np.ndarray  # [N] image rows of the gallery, in the protocol's gallery order
    positions: np.ndarray  # [Q] triplet positions in the cache (rows of texts.npy) of the ranked queries
    reference_rows: np.ndarray  # [Q] image rows of the references
    target_indices: np.ndarray  # [Q] position of each target in the gallery, -1 when outside it or withheld
    reference_indices: np.ndarray  # [Q] position of each reference in the gallery, -1 when outside it
    file_indices: np.ndarray  # [Q] position of each query in its caption file
    excluded: dict[str, list[int]]  # reason -> caption-file indices of queries left out
    outside_gallery: dict[str, list[int]]  # "target"/"reference" -> caption-file indices (kept)
    missing_images: int  # images of this category/split that the cache lacks

    def subset_indices(self, cache: FeatureCache) -> np.ndarray:
        """``[Q, S]`` gallery positions of each query's subset (CIRR's ``img_set``) without its reference,
        in the subset's file order, ``-1``-padded; ``S`` is the longest such subset (0 when there are none)."""
        positions = _gallery_positions(len(cache.image_ids), self.gallery_rows)
        subsets = [[int(positions[row]) for row in cache.triplets.subset_rows[p] if row != reference]
                   for p, reference in zip(self.positions.tolist(), self.reference_rows.tolist())]
        width = max((len(s) for s in subsets), default=0)
        out = np.full((len(subsets), width), -1, dtype=np.int64)
        for i, members in enumerate(subsets):
            out[i, : len(members)] = members
        return out

    def query_ids(self, cache: FeatureCache) -> list[str]:
        """The data set's own id of each query (CIRR's ``pairid``), or its caption-file index when it has none."""
        ids = cache.triplets.query_ids[self.positions]
        return [str(q) if q else str(int(i)) for q, i in zip(ids.tolist(), self.file_indices.tolist())]


def category_queries(cache: FeatureCache, category: str, split: str = "val", gallery_rows: np.ndarray | None = None,
                     keep_withheld: bool = False) -> CategoryQueries:
    """Resolve the gallery and queries of ``category``/``split`` in ``cache``.

    ``gallery_rows`` is the gallery (image rows, in order); by default every image of the split, in split-file
    order. ``keep_withheld`` keeps queries without a target (target index -1), for protocols that rank them
    without scoring them.
    """
    if gallery_rows is None:
        gallery_rows = cache.split_rows(category, split)
    table = cache.triplets
    positions = table.select([category], split)
    targets, references = table.target_rows[positions], table.reference_rows[positions]
    file_indices = table.file_index[positions]

    withheld = targets < 0
    gallery_position = _gallery_positions(len(cache.image_ids), gallery_rows)
    target_indices = np.where(withheld, -1, gallery_position[np.maximum(targets, 0)])
    reference_indices = gallery_position[references]
    target_outside = ~withheld & (target_indices < 0)
    reference_outside = ~withheld & (reference_indices < 0)

    report = missing_report(cache)
    key = f"{category}.{split}"
    kept = np.ones_like(withheld) if keep_withheld else ~withheld
    return CategoryQueries(
        category=category,
        gallery_rows=np.asarray(gallery_rows, dtype=np.int64),
        positions=positions[kept],
        reference_rows=references[kept],
        target_indices=target_indices[kept],
        reference_indices=reference_indices[kept],
        file_indices=file_indices[kept],
        excluded={
            EXCLUDED_MISSING_IMAGE: sorted(int(i) for i in report.dropped_triplets.get(key, [])),
            EXCLUDED_TARGET_WITHHELD: [] if keep_withheld else [int(i) for i in file_indices[withheld]],
        },
        outside_gallery={
            OUTSIDE_TARGET: [int(i) for i in file_indices[target_outside]],
            OUTSIDE_REFERENCE: [int(i) for i in file_indices[reference_outside]],
        },
        missing_images=len(report.missing_images.get(key, [])),
    )


def triplet_gallery_rows(cache: FeatureCache, category: str, split: str) -> np.ndarray:
    """Image rows of the images that occur in ``category``/``split``'s triplets (as reference or target), in the
    order of the split file, then any not in it in order of first occurrence: the gallery some papers rank against
    (DQU-CIR's default) instead of the whole split."""
    table = cache.triplets
    positions = table.select([category], split)
    used = np.concatenate([table.reference_rows[positions], table.target_rows[positions]])
    used = set(used[used >= 0].tolist())
    split_rows = cache.split_rows(category, split).tolist() if cache.has_split(category, split) else []
    ordered = [row for row in dict.fromkeys(split_rows) if row in used]
    seen = set(ordered)
    extra = [row for row in dict.fromkeys(np.concatenate([table.reference_rows[positions],
                                                           table.target_rows[positions]]).tolist())
             if row >= 0 and row not in seen]
    return np.asarray(ordered + extra, dtype=np.int64)


def missing_report(cache: FeatureCache) -> MissingReport:
    """The missing-image report the cache's manifest records (empty when none)."""
    data = cache.manifest.get(MANIFEST_MISSING_KEY)
    if data is None:
        return MissingReport()
    if not isinstance(data, dict):
        raise CacheMismatchError(f"{cache.root}: manifest key {MANIFEST_MISSING_KEY!r} is not a missing-image report")
    return MissingReport.from_dict(data)


def _gallery_positions(num_images: int, gallery_rows: np.ndarray) -> np.ndarray:
    """``[num_images]``: each image row's position in the gallery (its first occurrence), -1 when absent."""
    positions = np.full(num_images, -1, dtype=np.int64)
    rows = np.asarray(gallery_rows, dtype=np.int64)
    positions[rows[::-1]] = np.arange(len(rows) - 1, -1, -1)  # first occurrence wins
    return positions
