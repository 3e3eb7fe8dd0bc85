"""Plain records returned by the readers: no tensors, no file handles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Triplet:
    """One composed-retrieval example: reference image + relative caption(s) → target image.

    ``captions`` holds the data set's captions as its files give them (FashionIQ: two; CIRR: one);
    the reader's ``caption_texts`` turns them into the texts that are encoded. ``target`` is ``None``
    where the split withholds targets (FashionIQ's and CIRR's test splits). The optional fields are
    what CIRR records beside a triplet: ``query_id`` (its ``pairid``, the key of a test-server
    submission), ``subset`` (``img_set.members``: the six similar images of the Recall_subset metric,
    reference and target among them) and ``soft_targets`` (``target_soft``: image → score, other
    images that also satisfy the query with a positive score).
    """

    reference: str
    target: str | None
    captions: tuple[str, ...]
    category: str
    split: str
    index: int  # position in its caption file, so that any report can point back to the file
    query_id: str | None = None
    subset: tuple[str, ...] = ()
    soft_targets: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class SplitData:
    """What one category and split provides after the missing-image policy was applied."""

    category: str
    split: str
    image_ids: list[str]
    triplets: list[Triplet]
    missing_images: list[str]
    dropped_triplets: list[Triplet]
