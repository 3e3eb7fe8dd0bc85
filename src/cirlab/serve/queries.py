"""Validation queries for the search page: triplets of the feature cache whose target the gallery holds.

The page offers them as ready-made queries (a reference and a caption) and marks their true target
in the results. They come from the feature cache the engine serves, which is the cache the index
was built from: the triplets of the index's split, in the index's categories, whose target is in
that category's part of the gallery, in cache order (so the first queries of a category are those
of its caption file). The caption is the evaluation form, "C1 and c2", as the protocol encodes it.
A cache without such triplets (none extracted, or a split whose targets are withheld) gives none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cirlab.features.cache import FeatureCache
from cirlab.search.index import GalleryIndex


@dataclass(frozen=True)
class ValidationQuery:
    """One triplet as a query: the reference image, the caption, and the target it should find."""

    category: str
    reference_id: str
    caption: str
    target_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def validation_queries(features: FeatureCache, index: GalleryIndex) -> dict[str, list[ValidationQuery]]:
    """The queries of every gallery category (every category key present, possibly with an empty list)."""
    table = features.triplets
    found: dict[str, list[ValidationQuery]] = {category: [] for category in index.categories()}
    for position in table.select(list(found), index.manifest.split):
        reference, target = int(table.reference_rows[position]), int(table.target_rows[position])
        if reference < 0 or target < 0:
            continue
        category, target_id = str(table.categories[position]), features.image_ids[target]
        gallery_position = index.position_of(target_id)
        if gallery_position is None or category not in index.categories_of(gallery_position):
            continue
        found[category].append(ValidationQuery(category=category, reference_id=features.image_ids[reference],
                                               caption=features.eval_caption(int(position)), target_id=target_id))
    return found

