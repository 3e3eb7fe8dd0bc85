"""Torch data sets for encoder training: image–description pairs and CIR triplets.

Records come from a data set reader (:func:`cirlab.data.dataset.open_dataset`), after the missing-image
policy; images are decoded with :func:`cirlab.data.load_image` and turned into tensors by the preprocessing
given. Every random
choice a sample makes (description template, caption form) is drawn from a generator seeded by
``(seed, epoch, index)``, so an epoch yields the same samples in any process, with any number of
workers, and again after a resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from cirlab.data import MissingPolicy, MissingReport, Triplet, load_image, training_caption
from cirlab.data.dataset import DatasetReader
from cirlab.data.layout import tags_file
from cirlab.encoder_training.descriptions import eval_description, training_description
from cirlab.errors import DataError

Preprocess = Callable[[Any], Any]


@dataclass(frozen=True)
class DescribedImage:
    """One image with its category and attribute tags."""

    image_id: str
    path: Path
    category: str
    tags: tuple[str, ...]

    @property
    def description(self) -> str:
        """The fixed evaluation sentence of this image."""
        return eval_description(self.tags, self.category)


@dataclass
class DescribedSplit:
    """The tagged images of one split over every category, and what could not be used."""

    split: str
    images: list[DescribedImage]
    untagged: dict[str, int]  # category → images of the split without a tag entry (left out, counted)


def sample_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of one sample in one epoch: independent of process, worker and visiting order."""
    return random.Random((seed * 1_000_003 + epoch) * 1_000_003 + index)


def require_tags(dataset: DatasetReader, split: str) -> None:
    """Raise a one-line :class:`DataError` when a selected category has no tags for ``split`` (the reader says
    where its tags live: FashionIQ's ``tags/asin2attr.<category>.<split>.json``, the synthetic CIRR's
    ``cirr/tags/tags.rc2.<split>.json``)."""
    for category in dataset.categories:
        if dataset.tags(category, split) is not None:
            continue
        if dataset.kind == "fashioniq":
            raise DataError(tags_file(dataset.root, category, split),
                            f"tag file not found; pretraining builds image descriptions from attribute tags "
                            f"(tags/asin2attr.<category>.{split}.json)")
        raise DataError(dataset.root, f"no attribute tags for {category}/{split}; pretraining builds image "
                                      f"descriptions from attribute tags, which this data set does not have")


def described_split(dataset: DatasetReader, split: str, policy: MissingPolicy | str = MissingPolicy.ERROR,
                    report: MissingReport | None = None) -> DescribedSplit:
    """Every image of ``split`` (all selected categories) that has tags and an image file."""
    require_tags(dataset, split)
    images: list[DescribedImage] = []
    untagged: dict[str, int] = {}
    for category in dataset.categories:
        tags = dataset.tags(category, split) or {}
        data = dataset.split_data(category, split, policy, report)
        missing_tags = 0
        for image_id in data.image_ids:
            if image_id not in tags:
                missing_tags += 1
                continue
            path = dataset.image_path(image_id)
            assert path is not None  # split_data kept only images that exist
            images.append(DescribedImage(image_id, path, category, tuple(tags[image_id])))
        if missing_tags:
            untagged[category] = missing_tags
    if not images:
        raise DataError(dataset.root / "tags", f"no image of the {split} split has both an image file and tags")
    return DescribedSplit(split=split, images=images, untagged=untagged)


def split_triplets(dataset: DatasetReader, split: str, policy: MissingPolicy | str = MissingPolicy.ERROR,
                   report: MissingReport | None = None) -> list[Triplet]:
    """Triplets of ``split`` over every selected category, after the missing-image policy."""
    triplets: list[Triplet] = []
    for category in dataset.categories:
        triplets.extend(dataset.split_data(category, split, policy, report).triplets)
    if not triplets:
        raise DataError(dataset.root / "captions", f"no usable triplets in the {split} split")
    return triplets


class EpochSeeded:
    """Mixin: a data set whose random choices depend on ``(seed, epoch, index)``."""

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws ``__getitem__`` makes (call before iterating)."""
        self.epoch = epoch


class DescriptionPairs(EpochSeeded, Dataset):
    """``(image tensor, description)`` pairs for contrastive pretraining."""

    def __init__(self, images: Sequence[DescribedImage], preprocess: Preprocess, seed: int = 0) -> None:
        self.images = list(images)
        self.preprocess = preprocess
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        item = self.images[index]
        text = training_description(item.tags, item.category, sample_rng(self.seed, self.epoch, index))
        return self.preprocess(load_image(item.path)), text


class TripletSamples(EpochSeeded, Dataset):
    """``(reference tensor, caption, target tensor, index)`` samples for CLIP4Cir-style fine-tuning.

    The caption is one of the four training forms of the triplet's caption pair
    (:func:`cirlab.data.training_caption`); empty captions are kept as they are. ``index`` is the
    triplet's position in ``triplets`` (mining looks up its target and reference in the gallery by it).
    """

    def __init__(self, dataset: DatasetReader, triplets: Sequence[Triplet], preprocess: Preprocess,
                 seed: int = 0) -> None:
        self.triplets = list(triplets)
        self.preprocess = preprocess
        self.seed = seed
        self._paths = {image_id: dataset.image_path(image_id)
                       for t in self.triplets for image_id in (t.reference, t.target)}

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, index: int) -> tuple[Any, str, Any, int]:
        triplet = self.triplets[index]
        caption = training_caption(triplet.captions, sample_rng(self.seed, self.epoch, index))
        reference = self.preprocess(load_image(self._paths[triplet.reference]))
        target = self.preprocess(load_image(self._paths[triplet.target]))
        return reference, caption, target, index


class ImageFiles(Dataset):
    """Preprocessed images of a list of files, in order (for encoding a gallery)."""

    def __init__(self, paths: Sequence[Path], preprocess: Preprocess) -> None:
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        return self.preprocess(load_image(self.paths[index]))


class PixelHashes(Dataset):
    """The pixel hash of each of a list of image files, in order (for the exact-duplicate groups of a gallery)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> str:
        from cirlab.features.image_loading import pixel_hash

        return pixel_hash(load_image(self.paths[index]))
