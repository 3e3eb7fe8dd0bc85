"""What every data set reader gives, the registry of readers, and how a folder's layout is recognised.

A reader (:class:`DatasetReader`) turns one layout on disk into plain records: image names and their
files, the triplets of each category and split (:class:`~cirlab.data.records.Triplet`, any number of
captions), the optional tags, which splits have targets, and the data set's caption forms (the texts
encoded for each triplet, and which of them evaluation uses). Everything after the reader (extraction,
the feature cache, training, the protocols) works from these, so a new data set is one reader module
registered in :data:`DATASETS`.

A data set without categories (CIRR) has the single category :data:`SINGLE_CATEGORY`, so that
``<category>.<split>`` keys mean the same everywhere.

:func:`open_dataset` opens a folder as the layout it is named (``--dataset``) or the one it is
recognised as (each reader's :meth:`~DatasetReader.detect`), with a one-line error naming the files
each layout expects when none fits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from cirlab.data.missing import MissingPolicy, MissingReport
from cirlab.data.records import SplitData, Triplet
from cirlab.errors import ConfigError, DataError, MissingImagesError
from cirlab.registry import Registry

#: The category of a data set that has none (CIRR).
SINGLE_CATEGORY = "all"

#: The data set a feature cache, run or record that names none was made from (every one before CIRR).
DEFAULT_DATASET = "fashioniq"


class DatasetReader(ABC):
    """One data set folder in one layout; files are read lazily and once.

    Subclasses declare the layout's caption forms, evaluation form, splits and categories as class
    attributes and implement the file access; the missing-image policy (:meth:`split_data`) is shared.
    """

    #: Names of the texts encoded per triplet, in the order of :meth:`caption_texts`.
    caption_forms: ClassVar[tuple[str, ...]]
    #: Which of :attr:`caption_forms` the evaluation protocols encode.
    eval_form_index: ClassVar[int]
    #: Splits whose triplets must name their target (the others may withhold it).
    splits_with_targets: ClassVar[tuple[str, ...]]
    #: Every split the layout can hold, in order.
    known_splits: ClassVar[tuple[str, ...]]
    #: Every category the layout can hold (``(SINGLE_CATEGORY,)`` for a data set without categories).
    known_categories: ClassVar[tuple[str, ...]]
    #: The name it is registered under in :data:`DATASETS` (set by the registration).
    registry_name: ClassVar[str]

    def __init__(self, root: str | Path, categories: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "data set folder not found")
        if categories is None:
            categories = self._present_categories()
        unknown = [c for c in categories if c not in self.known_categories]
        if unknown:
            raise ConfigError(f"unknown categories {unknown}; {self.title()} has {list(self.known_categories)}")
        self.categories: tuple[str, ...] = tuple(categories)

    @classmethod
    def title(cls) -> str:
        """The data set's name in messages."""
        return cls.__name__

    @property
    def kind(self) -> str:
        """The registry name of this reader's layout (``fashioniq``, ``cirr``), recorded in feature caches."""
        return type(self).registry_name

    # ------------------------------------------------------------ the layout
    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> bool:
        """Whether ``root`` holds files of this layout (any split or caption file)."""

    @classmethod
    @abstractmethod
    def expected_files(cls) -> tuple[str, ...]:
        """The files this layout holds, as patterns relative to the root, for messages."""

    @classmethod
    def layout_hint(cls, root: Path) -> str | None:
        """Advice when ``root`` looks like a wrongly chosen folder of this layout (e.g. a sub-folder), else None."""
        return None

    @classmethod
    @abstractmethod
    def caption_texts(cls, captions: Sequence[str]) -> tuple[str, ...]:
        """Every caption form of a triplet's ``captions``, in :attr:`caption_forms` order."""

    @abstractmethod
    def _present_categories(self) -> tuple[str, ...]:
        """Categories whose files exist (a DataError naming the expected files when there are none)."""

    @abstractmethod
    def present_splits(self, category: str) -> list[str]:
        """Splits of ``category`` that have files, in order; a DataError when a split has only part of its files."""

    @abstractmethod
    def has_split(self, category: str, split: str) -> bool:
        """Whether ``category``/``split`` has the files a reader needs to give its images and triplets."""

    def splits(self) -> list[str]:
        """Splits that every selected category has."""
        return [s for s in self.known_splits if all(self.has_split(c, s) for c in self.categories)]

    def has_targets(self, split: str) -> bool:
        """Whether ``split`` names the target of every triplet: always for :attr:`splits_with_targets`,
        otherwise when every triplet of the split (of every selected category that has it) names one."""
        if split in self.splits_with_targets:
            return True
        triplets = [t for c in self.categories if self.has_split(c, split) for t in self.triplets(c, split)]
        return bool(triplets) and all(t.target is not None for t in triplets)

    @abstractmethod
    def image_ids(self, category: str, split: str) -> list[str]:
        """Image names of one category and split, in file order."""

    @abstractmethod
    def triplets(self, category: str, split: str) -> list[Triplet]:
        """Triplets of one category and split, in file order."""

    def tags(self, category: str, split: str) -> dict[str, list[str]] | None:
        """Attribute tags per image name, or ``None`` when the data set has none for this split."""
        return None

    @abstractmethod
    def annotation_files(self) -> list[Path]:
        """Every annotation file of the selected categories that exists, sorted (for the data fingerprint)."""

    @property
    @abstractmethod
    def images_root(self) -> Path:
        """The folder image files are found under (and named relative to, in the data fingerprint)."""

    @abstractmethod
    def image_folders(self) -> list[Path]:
        """The folders holding the data set's image files, sorted."""

    # ----------------------------------------------------------------- images
    @cached_property
    def _image_files(self) -> Mapping[str, Path]:
        return self._find_images()

    @abstractmethod
    def _find_images(self) -> Mapping[str, Path]:
        """Image name → file, for every image file present (read once)."""

    def image_path(self, image_id: str) -> Path | None:
        """The file of ``image_id``, or ``None`` when the data set lacks it."""
        return self._image_files.get(image_id)

    def available_image_ids(self) -> set[str]:
        """Every image name whose file is present."""
        return set(self._image_files)

    # ------------------------------------------------------------ missing data
    def split_data(self, category: str, split: str, policy: MissingPolicy | str = MissingPolicy.ERROR,
                   report: MissingReport | None = None) -> SplitData:
        """Image names and triplets of one category and split after the missing-image policy.

        An image is missing when the split file or a triplet (its reference or target) names it and
        its file is absent. With ``error`` any missing image raises :class:`MissingImagesError` that
        counts them and names the first few. With ``skip`` they and the triplets whose reference or
        target is one are left out and recorded in ``report`` (when given) under ``"<category>.<split>"``.
        """
        policy = MissingPolicy.parse(policy)
        available = self._image_files
        ids = self.image_ids(category, split)
        triplets = self.triplets(category, split)
        referenced = list(ids) + [t.reference for t in triplets] + [t.target for t in triplets if t.target]
        missing = sorted({image_id for image_id in referenced if image_id not in available})
        missing_set = set(missing)
        dropped = [t for t in triplets if t.reference in missing_set or (t.target in missing_set)]
        if missing and policy is MissingPolicy.ERROR:
            raise MissingImagesError(
                self.images_root,
                f"{len(missing)} images of {self.split_name(category, split)} are missing (e.g. "
                f"{', '.join(missing[:3])}), affecting {len(dropped)} of {len(triplets)} triplets; pass --missing "
                f"skip (missing=\"skip\") to leave them out with counts",
            )
        if report is not None:
            report.policy = policy.value
            report.add(f"{category}.{split}", missing, [t.index for t in dropped])
        kept_ids = [i for i in ids if i not in missing_set]
        kept_triplets = [t for t in triplets if t.reference not in missing_set and t.target not in missing_set]
        return SplitData(category=category, split=split, image_ids=kept_ids, triplets=kept_triplets,
                         missing_images=missing, dropped_triplets=dropped)

    @staticmethod
    def split_name(category: str, split: str) -> str:
        """``category/split`` for messages; just ``split`` for a data set without categories."""
        return split if category == SINGLE_CATEGORY else f"{category}/{split}"


#: The data set readers, by layout name (``cirlab.data`` imports and so registers every built-in one).
DATASETS: Registry[type[DatasetReader]] = Registry("data set")


def dataset_class(kind: str | None) -> type[DatasetReader]:
    """The reader registered as ``kind`` (``None``: :data:`DEFAULT_DATASET`); a ConfigError naming the known ones."""
    return DATASETS.get(kind or DEFAULT_DATASET)


def describe_layouts() -> str:
    """Every layout with the files it expects, for messages: ``cirr: a, b; fashioniq: c, d``."""
    return "; ".join(f"{name}: {', '.join(dataset_class(name).expected_files())}" for name in DATASETS.names())


def detect_dataset(root: str | Path) -> str | None:
    """The name of the one layout ``root`` holds files of; ``None`` when it holds none.

    A folder with the files of several layouts is a ConfigError asking to name one.
    """
    root = Path(root)
    found = [name for name in DATASETS.names() if DATASETS.get(name).detect(root)]
    if len(found) > 1:
        raise ConfigError(f"{root}: holds files of several data set layouts ({', '.join(found)}); "
                          f"name one with --dataset")
    return found[0] if found else None


def open_dataset(root: str | Path, kind: str | None = None,
                 categories: Sequence[str] | None = None) -> DatasetReader:
    """The data set at ``root`` read as layout ``kind``, or as the layout it is recognised as when ``kind`` is None.

    ``categories`` restricts it to some categories (all whose files exist by default). A folder of
    no known layout is a one-line DataError naming the files each layout expects.
    """
    root = Path(root)
    if kind is not None:
        return dataset_class(kind)(root, categories)
    if not root.is_dir():
        raise DataError(root, "data set folder not found")
    found = detect_dataset(root)
    if found is None:
        hints = [hint for name in DATASETS.names() if (hint := DATASETS.get(name).layout_hint(root))]
        advice = f"; {hints[0]}" if hints else ""
        raise DataError(root, f"not a data set folder of a known layout (expected {describe_layouts()}){advice}")
    return dataset_class(found)(root, categories)
