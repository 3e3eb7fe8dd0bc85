"""What an extraction encodes: the distinct images, the triplets, and where each split's images sit.

Planning reads only the data set's JSON files and folder listing (no pixels), applies the
missing-image policy, and fixes the order of everything the cache will hold, so every process of a
distributed run and every resumed run agree on which row is which. Images that turn out to be
corrupt when decoded are removed afterwards by :func:`finalize`, which treats them as missing: they
and the triplets that need them are left out and counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirlab.data.dataset import DatasetReader
from cirlab.data.missing import MissingPolicy, MissingReport
from cirlab.data.records import Triplet
from cirlab.errors import DataError, MissingImagesError


@dataclass
class ExtractionPlan:
    """Everything to encode, in cache order."""

    image_ids: list[str]  # distinct ids, in order of first appearance
    image_paths: list[Path]  # file of each id
    split_ids: dict[str, list[str]]  # "<category>.<split>" → image ids of the split file, after the policy
    triplets: list[Triplet]  # every kept triplet, by category, split, then file order
    caption_texts: Callable[[Sequence[str]], tuple[str, ...]]  # the data set's caption forms of a triplet
    forms: int  # caption forms per triplet
    missing: MissingReport = field(default_factory=MissingReport)

    def texts(self, start: int, stop: int) -> list[str]:
        """The caption forms of triplets ``start:stop``, :attr:`forms` per triplet, flattened in form order."""
        return [text for triplet in self.triplets[start:stop] for text in self.caption_texts(triplet.captions)]

    def order_digest(self) -> str:
        """sha256 over the image and triplet order; equal digests mean chunk rows refer to the same items."""
        digest = hashlib.sha256()
        for image_id in self.image_ids:
            digest.update(f"i {image_id}\n".encode())
        for t in self.triplets:
            digest.update(f"t {t.category} {t.split} {t.index}\n".encode())
        return digest.hexdigest()


def plan_extraction(dataset: DatasetReader, policy: MissingPolicy | str = MissingPolicy.ERROR) -> ExtractionPlan:
    """Collect every image and triplet of every category and split present in ``dataset``.

    Which splits are present is the reader's rule (:meth:`~cirlab.data.dataset.DatasetReader.present_splits`:
    FashionIQ needs both files of a split, CIRR a split file, whose captions are optional). Under the
    ``error`` policy, missing images are counted over every split first, so that the error gives the
    whole count.
    """
    policy = MissingPolicy.parse(policy)
    report = MissingReport(policy=policy.value)
    row_of: dict[str, int] = {}
    image_ids: list[str] = []
    split_ids: dict[str, list[str]] = {}
    triplets: list[Triplet] = []

    def add(image_id: str) -> None:
        if image_id not in row_of:
            row_of[image_id] = len(image_ids)
            image_ids.append(image_id)

    for category in dataset.categories:
        for split in dataset.present_splits(category):
            data = dataset.split_data(category, split, MissingPolicy.SKIP, report)  # counted, refused below
            split_ids[f"{category}.{split}"] = list(data.image_ids)
            for image_id in data.image_ids:
                add(image_id)
            for triplet in data.triplets:
                add(triplet.reference)
                if triplet.target is not None:
                    add(triplet.target)
            triplets.extend(data.triplets)
    if not split_ids:
        raise DataError(dataset.root, f"no split or caption files for the chosen categories (expected "
                                      f"{', '.join(dataset.expected_files())})")
    report.policy = policy.value
    if policy is MissingPolicy.ERROR and report.total_missing:
        raise _missing_images_error(dataset, report)
    paths = []
    for image_id in image_ids:
        path = dataset.image_path(image_id)
        if path is None:  # split_data has applied the policy, so every kept id has a file
            raise DataError(dataset.images_root, f"image {image_id!r} vanished while planning")
        paths.append(path)
    return ExtractionPlan(image_ids=image_ids, image_paths=paths, split_ids=split_ids, triplets=triplets,
                          caption_texts=dataset.caption_texts, forms=len(dataset.caption_forms), missing=report)


def _missing_images_error(dataset: DatasetReader, report: MissingReport) -> MissingImagesError:
    """One line: how many images are missing over every split, where, a few examples, and the flag to use."""
    examples = sorted({image_id for ids in report.missing_images.values() for image_id in ids})[:3]
    where = ", ".join(f"{key.replace('.', '/')}: {len(ids)}" for key, ids in sorted(report.missing_images.items()))
    return MissingImagesError(
        dataset.images_root,
        f"{report.total_missing} images named by the split and caption files are missing ({where}; e.g. "
        f"{', '.join(examples)}), needed by {report.total_dropped} triplets; pass --missing skip to leave them "
        f"out with counts")


@dataclass
class FinalLayout:
    """The cache's rows once corrupt images are left out."""

    image_rows: list[int]  # plan rows kept, in cache order
    image_ids: list[str]
    split_rows: dict[str, list[int]]
    triplet_positions: list[int]  # plan triplet positions kept, in cache order
    triplets: list[dict[str, Any]]  # write_cache's triplet records (with the data set's optional query records)
    corrupt: MissingReport  # what the corrupt images removed, per "<category>.<split>"


def finalize(plan: ExtractionPlan, corrupt_ids: set[str]) -> FinalLayout:
    """Lay out the cache from ``plan``, leaving out ``corrupt_ids`` and every triplet that needs one.

    A triplet needs its reference and its target; images of its subset and soft targets that the cache
    lacks (missing or corrupt under ``skip``) are left out of its ``subset_rows`` and ``soft_targets``.
    """
    report = MissingReport(policy=MissingPolicy.SKIP.value)
    image_rows = [row for row, image_id in enumerate(plan.image_ids) if image_id not in corrupt_ids]
    new_row = {plan.image_ids[row]: i for i, row in enumerate(image_rows)}
    split_rows = {key: [new_row[i] for i in ids if i in new_row] for key, ids in plan.split_ids.items()}
    positions: list[int] = []
    records: list[dict[str, Any]] = []
    per_key: dict[str, tuple[set[str], list[int]]] = {}
    for key, ids in plan.split_ids.items():
        per_key[key] = ({i for i in ids if i in corrupt_ids}, [])
    for position, t in enumerate(plan.triplets):
        key = f"{t.category}.{t.split}"
        needed = [t.reference] + ([t.target] if t.target is not None else [])
        bad = [i for i in needed if i in corrupt_ids]
        if bad:
            per_key.setdefault(key, (set(), []))
            per_key[key][0].update(bad)
            per_key[key][1].append(t.index)
            continue
        positions.append(position)
        record: dict[str, Any] = {
            "category": t.category, "split": t.split, "file_index": t.index,
            "reference_row": new_row[t.reference],
            "target_row": new_row[t.target] if t.target is not None else -1,
            "captions": list(t.captions),
        }
        if t.query_id is not None:
            record["query_id"] = t.query_id
        if t.subset:
            record["subset_rows"] = [new_row[i] for i in t.subset if i in new_row]
        if t.soft_targets:
            record["soft_targets"] = [[new_row[i], score] for i, score in t.soft_targets if i in new_row]
        records.append(record)
    for key, (ids, dropped) in per_key.items():
        report.add(key, sorted(ids), dropped)
    return FinalLayout(image_rows=image_rows, image_ids=[plan.image_ids[r] for r in image_rows],
                       split_rows=split_rows, triplet_positions=positions, triplets=records, corrupt=report)
