"""Plain records returned by the readers: no tensors, no file handles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Triplet:
    """One composed-retrieval example: reference image + two relative captions → target image.

    ``target`` is ``None`` for FashionIQ's test split, whose targets are withheld.
    """

    reference: str
    target: str | None
    captions: tuple[str, str]
    category: str
    split: str
    index: int  # position in its caption file, so that any report can point back to the file


@dataclass(frozen=True)
class SplitData:
    """What one category and split provides after the missing-image policy was applied."""

    category: str
    split: str
    image_ids: list[str]
    triplets: list[Triplet]
    missing_images: list[str]
    dropped_triplets: list[Triplet]
