"""Reader for data sets in the FashionIQ layout (the real one and cirlab's synthetic one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from cirlab.data.captions import CAPTION_FORMS, EVAL_FORM_INDEX, caption_variants
from cirlab.data.dataset import DATASETS, DatasetReader
from cirlab.data.images import scan_images
from cirlab.data.jsonfiles import read_caption_file, read_split_file, read_tags_file
from cirlab.data.layout import (
    CATEGORIES,
    SPLITS,
    SPLITS_DIR,
    captions_file,
    images_dir,
    split_file,
    tags_file,
)
from cirlab.data.records import Triplet
from cirlab.errors import DataError


@DATASETS.register("fashioniq")
class FashionIQ(DatasetReader):
    """FashionIQ: three garment categories, two relative captions per triplet, test targets withheld.

    Files are read lazily and once. ``categories`` restricts the data set to some categories;
    by default every category whose files exist is used.
    """

    caption_forms = CAPTION_FORMS
    eval_form_index = EVAL_FORM_INDEX
    splits_with_targets = ("train", "val")
    known_splits = SPLITS
    known_categories = CATEGORIES

    def __init__(self, root: str | Path, categories: Sequence[str] | None = None) -> None:
        super().__init__(root, categories)
        self._ids: dict[tuple[str, str], list[str]] = {}
        self._triplets: dict[tuple[str, str], list[Triplet]] = {}

    # ----------------------------------------------------------------- layout
    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(split_file(root, c, s).exists() or captions_file(root, c, s).exists()
                   for c in CATEGORIES for s in SPLITS)

    @classmethod
    def expected_files(cls) -> tuple[str, ...]:
        return ("images/<id>.jpg|.png", "captions/cap.<category>.<split>.json",
                "image_splits/split.<category>.<split>.json")

    @classmethod
    def caption_texts(cls, captions: Sequence[str]) -> tuple[str, ...]:
        """The four training forms of the caption pair (:func:`cirlab.data.captions.caption_variants`)."""
        return caption_variants(captions)

    def _present_categories(self) -> tuple[str, ...]:
        present = tuple(c for c in CATEGORIES if any(split_file(self.root, c, s).exists() for s in SPLITS))
        if not present:
            raise DataError(self.root / SPLITS_DIR, "no split files found (expected split.<category>.<split>.json)")
        return present

    # ------------------------------------------------------------------ files
    def has_split(self, category: str, split: str) -> bool:
        """Whether both the split file and the caption file of ``category``/``split`` exist."""
        return split_file(self.root, category, split).exists() and captions_file(self.root, category, split).exists()

    def present_splits(self, category: str) -> list[str]:
        """Splits with a split file or a caption file; having only one of the two is an error (half a split
        cannot be encoded faithfully)."""
        present = []
        for split in SPLITS:
            sfile, cfile = split_file(self.root, category, split), captions_file(self.root, category, split)
            if not sfile.exists() and not cfile.exists():
                continue
            for path in (sfile, cfile):
                if not path.exists():
                    raise DataError(path, f"file not found, but the other file of {category}/{split} exists")
            present.append(split)
        return present

    def image_ids(self, category: str, split: str) -> list[str]:
        """Image ids of ``split.<category>.<split>.json``, in file order."""
        key = (category, split)
        if key not in self._ids:
            self._ids[key] = read_split_file(split_file(self.root, category, split))
        return self._ids[key]

    def triplets(self, category: str, split: str) -> list[Triplet]:
        """Triplets of ``cap.<category>.<split>.json``, in file order."""
        key = (category, split)
        if key not in self._triplets:
            path = captions_file(self.root, category, split)
            entries = read_caption_file(path, require_target=split in self.splits_with_targets)
            self._triplets[key] = [
                Triplet(reference=e["candidate"], target=e.get("target"), captions=(e["captions"][0], e["captions"][1]),
                        category=category, split=split, index=i)
                for i, e in enumerate(entries)
            ]
        return self._triplets[key]

    def tags(self, category: str, split: str) -> dict[str, list[str]] | None:
        """Attribute tags per image id, or ``None`` when the optional tag file is absent."""
        path = tags_file(self.root, category, split)
        return read_tags_file(path) if path.exists() else None

    def annotation_files(self) -> list[Path]:
        """The caption, split and tag files of the selected categories that exist."""
        files = []
        for category in self.categories:
            for split in SPLITS:
                for path in (captions_file(self.root, category, split), split_file(self.root, category, split),
                             tags_file(self.root, category, split)):
                    if path.is_file():
                        files.append(path)
        return sorted(files)

    # ----------------------------------------------------------------- images
    @property
    def images_root(self) -> Path:
        return images_dir(self.root)

    def image_folders(self) -> list[Path]:
        return [images_dir(self.root)]

    def _find_images(self) -> Mapping[str, Path]:
        found, ambiguous = scan_images(images_dir(self.root))
        if ambiguous:
            image_id, paths = next(iter(sorted(ambiguous.items())))
            raise DataError(paths[0].parent, f"{len(ambiguous)} image ids have several files, e.g. {image_id!r}: "
                                             f"{', '.join(p.name for p in paths)}")
        return found
