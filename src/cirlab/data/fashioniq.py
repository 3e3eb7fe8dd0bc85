"""Reader for data sets in the FashionIQ layout (the real one and cirlab's synthetic one)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from cirlab.data.images import scan_images
from cirlab.data.jsonfiles import read_caption_file, read_split_file, read_tags_file
from cirlab.data.layout import CATEGORIES, SPLITS, captions_file, images_dir, split_file, tags_file
from cirlab.data.missing import MissingPolicy, MissingReport
from cirlab.data.records import SplitData, Triplet
from cirlab.errors import ConfigError, DataError, MissingImagesError


class FashionIQ:
    """A FashionIQ-layout data set rooted at ``root``.

    Files are read lazily and once. ``categories`` restricts the data set to some categories;
    by default every category whose files exist is used.
    """

    def __init__(self, root: str | Path, categories: list[str] | tuple[str, ...] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "data set folder not found")
        if categories is None:
            categories = [c for c in CATEGORIES if any(split_file(self.root, c, s).exists() for s in SPLITS)]
            if not categories:
                raise DataError(self.root / "image_splits",
                                "no split files found (expected split.<category>.<split>.json)")
        unknown = [c for c in categories if c not in CATEGORIES]
        if unknown:
            raise ConfigError(f"unknown categories {unknown}; FashionIQ has {list(CATEGORIES)}")
        self.categories: tuple[str, ...] = tuple(categories)
        self._ids: dict[tuple[str, str], list[str]] = {}
        self._triplets: dict[tuple[str, str], list[Triplet]] = {}

    # ------------------------------------------------------------------ files
    def has_split(self, category: str, split: str) -> bool:
        """Whether both the split file and the caption file of ``category``/``split`` exist."""
        return split_file(self.root, category, split).exists() and captions_file(self.root, category, split).exists()

    def splits(self) -> list[str]:
        """Splits for which every selected category has files."""
        return [s for s in SPLITS if all(self.has_split(c, s) for c in self.categories)]

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
            entries = read_caption_file(path, require_target=split != "test")
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

    # ----------------------------------------------------------------- images
    @cached_property
    def _image_index(self) -> dict[str, Path]:
        found, ambiguous = scan_images(images_dir(self.root))
        if ambiguous:
            image_id, paths = next(iter(sorted(ambiguous.items())))
            raise DataError(paths[0].parent, f"{len(ambiguous)} image ids have several files, e.g. {image_id!r}: "
                                             f"{', '.join(p.name for p in paths)}")
        return found

    def image_path(self, image_id: str) -> Path | None:
        """The file of ``image_id``, or ``None`` when the images folder lacks it."""
        return self._image_index.get(image_id)

    def available_image_ids(self) -> set[str]:
        """Every image id present in the images folder."""
        return set(self._image_index)

    # ------------------------------------------------------------ missing data
    def split_data(self, category: str, split: str, policy: MissingPolicy | str = MissingPolicy.ERROR,
                   report: MissingReport | None = None) -> SplitData:
        """Image ids and triplets of one category and split after the missing-image policy.

        With ``error`` any missing image raises :class:`MissingImagesError` that counts them and
        names the first few. With ``skip`` they and the triplets that need them are left out and
        recorded in ``report`` (when given) under ``"<category>.<split>"``.
        """
        policy = MissingPolicy.parse(policy)
        available = self._image_index
        ids = self.image_ids(category, split)
        triplets = self.triplets(category, split)
        referenced = list(ids) + [t.reference for t in triplets] + [t.target for t in triplets if t.target]
        missing = sorted({image_id for image_id in referenced if image_id not in available})
        missing_set = set(missing)
        dropped = [t for t in triplets if t.reference in missing_set or (t.target in missing_set)]
        if missing and policy is MissingPolicy.ERROR:
            affected = len(dropped)
            raise MissingImagesError(
                images_dir(self.root),
                f"{len(missing)} images of {category}/{split} are missing (e.g. {', '.join(missing[:3])}), "
                f"affecting {affected} of {len(triplets)} triplets; pass --missing skip (missing=\"skip\") "
                f"to leave them out with counts",
            )
        if report is not None:
            report.policy = policy.value
            report.add(f"{category}.{split}", missing, [t.index for t in dropped])
        kept_ids = [i for i in ids if i not in missing_set]
        kept_triplets = [t for t in triplets if t.reference not in missing_set and t.target not in missing_set]
        return SplitData(category=category, split=split, image_ids=kept_ids, triplets=kept_triplets,
                         missing_images=missing, dropped_triplets=dropped)
