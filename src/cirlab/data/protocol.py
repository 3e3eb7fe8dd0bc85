"""Inputs of a validation protocol, read from the data set's files.

Per category: gallery = every image of the category's split file (FashionIQ's
``split.<category>.val.json``, CIRR's ``split.rc2.val.json``); queries = every triplet of its caption
file (empty captions included). A query whose reference or target is not in the gallery cannot be
ranked as the field ranks it; such queries are listed, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cirlab.data.dataset import DatasetReader
from cirlab.data.missing import MissingPolicy, MissingReport
from cirlab.data.records import Triplet


@dataclass
class ProtocolInputs:
    """Gallery and queries of one category, plus the queries that fall outside the gallery."""

    category: str
    gallery: list[str]
    queries: list[Triplet]
    outside_gallery: list[Triplet] = field(default_factory=list)


def validation_inputs(dataset: DatasetReader, category: str, split: str = "val",
                      policy: MissingPolicy | str = MissingPolicy.ERROR,
                      report: MissingReport | None = None) -> ProtocolInputs:
    """Build the protocol's gallery and queries for one category, applying the missing-image policy."""
    data = dataset.split_data(category, split, policy, report)
    gallery_set = set(data.image_ids)
    outside = [t for t in data.triplets if t.reference not in gallery_set or t.target not in gallery_set]
    return ProtocolInputs(category=category, gallery=data.image_ids, queries=data.triplets, outside_gallery=outside)
