"""Reader for CIRR (Composed Image Retrieval on Real-life images; Liu et al., ICCV 2021).

One caption per query, no categories (the single category ``all``), three splits: ``train``, ``val``
and ``test1``, whose targets are withheld (its results come from the data set's evaluation server).
Each query also records its ``pairid``, the six images of its ``img_set`` (the subset of the
Recall_subset metric) and its ``target_soft`` scores (other images that satisfy it too).

The caption is encoded exactly as written, as CLIP4Cir encodes it (no stripping or capitalising,
unlike FashionIQ's caption forms): it is the data set's one caption form and its evaluation form.

A split file maps image names to paths relative to the root; an image is present when the file at
that path exists. A split with a split file and no caption file holds images only (the public
annotations ship without the training captions); a caption file without its split file is an error,
since its images cannot be found. The optional tag file of a split (``cirr/tags/tags.rc2.<split>.json``)
is a cirlab extension that the synthetic CIRR-format benchmark writes; real CIRR has none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cirlab.data.cirr_files import read_cirr_caption_file, read_cirr_split_file
from cirlab.data.cirr_layout import (
    CAPTIONS_DIR,
    SPLITS,
    SPLITS_DIR,
    annotations_dir,
    captions_file,
    split_file,
    tags_file,
)
from cirlab.data.dataset import DATASETS, SINGLE_CATEGORY, DatasetReader
from cirlab.data.images import list_image_files
from cirlab.data.jsonfiles import read_tags_file
from cirlab.data.records import Triplet
from cirlab.errors import DataError


@DATASETS.register("cirr")
class CIRR(DatasetReader):
    """CIRR: real-life photos, one relative caption per query, a subset of six images per query, test1 scored by
    the evaluation server."""

    caption_forms = ("caption",)
    eval_form_index = 0
    splits_with_targets = ("train", "val")
    known_splits = SPLITS
    known_categories = (SINGLE_CATEGORY,)

    def __init__(self, root: str | Path, categories: Sequence[str] | None = None) -> None:
        super().__init__(root, categories)
        self._paths: dict[str, dict[str, str]] = {}
        self._triplets: dict[str, list[Triplet]] = {}

    # ----------------------------------------------------------------- layout
    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(split_file(root, s).exists() or captions_file(root, s).exists() for s in SPLITS)

    @classmethod
    def expected_files(cls) -> tuple[str, ...]:
        return ("cirr/captions/cap.rc2.<split>.json", "cirr/image_splits/split.rc2.<split>.json",
                "images at the paths the split files name")

    @classmethod
    def layout_hint(cls, root: Path) -> str | None:
        root = Path(root)
        if any((root / CAPTIONS_DIR / captions_file(root, s).name).exists()
               or (root / SPLITS_DIR / split_file(root, s).name).exists() for s in SPLITS):
            return (f"{root} looks like CIRR's annotation folder: pass the folder that holds it as cirr/ "
                    f"beside the image folders (train/, dev/, test1/)")
        return None

    @classmethod
    def caption_texts(cls, captions: Sequence[str]) -> tuple[str, ...]:
        """The caption as written (CLIP4Cir tokenises CIRR's captions unchanged)."""
        (caption,) = captions
        return (caption,)

    def _present_categories(self) -> tuple[str, ...]:
        if not any(split_file(self.root, s).exists() for s in SPLITS):
            raise DataError(annotations_dir(self.root) / SPLITS_DIR,
                            "no split files found (expected split.rc2.<split>.json)")
        return (SINGLE_CATEGORY,)

    # ------------------------------------------------------------------ files
    def has_split(self, category: str, split: str) -> bool:
        """Whether the split file of ``split`` exists (its caption file is optional: without it the split holds
        images only)."""
        return category in self.categories and split_file(self.root, split).exists()

    def present_splits(self, category: str) -> list[str]:
        """Splits with a split file; a caption file without its split file is an error."""
        present = []
        for split in SPLITS:
            if split_file(self.root, split).exists():
                present.append(split)
            elif captions_file(self.root, split).exists():
                raise DataError(split_file(self.root, split),
                                f"file not found, but the caption file of {split} exists (its images cannot be "
                                f"found without it)")
        return present

    def relative_paths(self, split: str) -> dict[str, str]:
        """Image name → path relative to the root, of ``split.rc2.<split>.json``, in file order."""
        if split not in self._paths:
            self._paths[split] = read_cirr_split_file(split_file(self.root, split))
        return self._paths[split]

    def image_ids(self, category: str, split: str) -> list[str]:
        """Image names of ``split.rc2.<split>.json``, in file order."""
        self._check_category(category)
        return list(self.relative_paths(split))

    def triplets(self, category: str, split: str) -> list[Triplet]:
        """Queries of ``cap.rc2.<split>.json``, in file order; none when the split has no caption file."""
        self._check_category(category)
        if split not in self._triplets:
            path = captions_file(self.root, split)
            if not path.exists() and split_file(self.root, split).exists():
                self._triplets[split] = []
            else:
                queries = read_cirr_caption_file(path, require_target=split in self.splits_with_targets)
                self._triplets[split] = [
                    Triplet(reference=q.reference, target=q.target, captions=(q.caption,), category=SINGLE_CATEGORY,
                            split=split, index=i, query_id=q.query_id, subset=q.subset, soft_targets=q.soft_targets)
                    for i, q in enumerate(queries)
                ]
        return self._triplets[split]

    def _check_category(self, category: str) -> None:
        if category != SINGLE_CATEGORY:
            raise DataError(annotations_dir(self.root), f"CIRR has no category {category!r}; its one category is "
                                                        f"{SINGLE_CATEGORY!r}")

    def tags(self, category: str, split: str) -> dict[str, list[str]] | None:
        """Attribute phrases per image name from the optional ``tags.rc2.<split>.json`` (written by ``cirlab synth
        --format cirr``), or ``None`` when the split has none (real CIRR has no tags)."""
        self._check_category(category)
        path = tags_file(self.root, split)
        return read_tags_file(path) if path.exists() else None

    def annotation_files(self) -> list[Path]:
        """The caption, split and (optional) tag files that exist."""
        files = [path for s in SPLITS for path in (captions_file(self.root, s), split_file(self.root, s),
                                                   tags_file(self.root, s)) if path.is_file()]
        return sorted(files)

    # ----------------------------------------------------------------- images
    @property
    def images_root(self) -> Path:
        return self.root

    def _split_files_present(self) -> list[str]:
        return [s for s in SPLITS if split_file(self.root, s).exists()]

    def image_folders(self) -> list[Path]:
        """The folders the split files' paths point into (``dev/``, ``test1/``, ``train/<n>/``)."""
        folders = {os.path.dirname(relative) for s in self._split_files_present()
                   for relative in self.relative_paths(s).values()}
        return sorted(self.root / folder for folder in folders)

    def _find_images(self) -> Mapping[str, Path]:
        """Every name of every split file whose file exists; each folder is listed once (not one ``stat`` per
        image). A name that two split files place at different paths is an error."""
        placed: dict[str, str] = {}
        for split in self._split_files_present():
            for name, relative in self.relative_paths(split).items():
                earlier = placed.setdefault(name, relative)
                if earlier != relative:
                    raise DataError(split_file(self.root, split),
                                    f"image {name!r} is at {relative!r} here but at {earlier!r} in another split file")
        listed: dict[str, set[str]] = {}
        found = {}
        for name, relative in placed.items():
            folder, file_name = os.path.split(relative)
            if folder not in listed:
                listed[folder] = _file_names(self.root / folder)
            if file_name in listed[folder]:
                found[name] = self.root / relative
        return found


def _file_names(folder: Path) -> set[str]:
    """Names of the image files in ``folder``; none when the folder does not exist."""
    try:
        return {entry.name for entry in list_image_files(folder)}
    except DataError:
        if folder.exists():
            raise
        return set()
