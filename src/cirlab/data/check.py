"""``cirlab data check``: validate a data set (FashionIQ or CIRR layout) and summarise it.

Every file problem is collected (not only the first) so a user sees the whole picture at once; each
is one line naming the file and the problem. The layout is the one named, or the one the folder is
recognised as; a folder of no known layout is checked as FashionIQ's (whose checks name each missing
folder), with a line naming the files every layout expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirlab.data import cirr_layout
from cirlab.data.cirr import CIRR
from cirlab.data.dataset import DATASETS, DEFAULT_DATASET, SINGLE_CATEGORY, describe_layouts, detect_dataset
from cirlab.data.images import DEFAULT_MAX_PIXELS, load_image, scan_images
from cirlab.data.jsonfiles import read_caption_file, read_split_file, read_tags_file
from cirlab.data.layout import (
    CAPTIONS_DIR,
    CATEGORIES,
    SPLITS,
    SPLITS_DIR,
    captions_file,
    images_dir,
    split_file,
    tags_file,
)
from cirlab.data.records import Triplet
from cirlab.errors import ConfigError, DataError
from cirlab.progress import progress


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    root: Path
    dataset: str = DEFAULT_DATASET  # the layout checked
    images_on_disk: int = 0
    split_images: dict[str, int] = field(default_factory=dict)
    triplets: dict[str, int] = field(default_factory=dict)
    empty_captions: int = 0
    tag_files: int = 0
    missing_images: list[str] = field(default_factory=list)
    triplets_affected: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    corrupt_images: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (missing images, duplicates, corrupt files or file problems)."""
        return not (self.problems or self.missing_images or self.duplicate_ids or self.corrupt_images)

    def categories(self) -> list[str]:
        """Categories that have at least one split file."""
        return sorted({key.split(".")[0] for key in self.split_images})

    def splits(self) -> list[str]:
        """Splits that have at least one split file, in the layout's order."""
        present = {key.split(".")[1] for key in self.split_images}
        return [s for s in DATASETS.get(self.dataset).known_splits if s in present]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "root": str(self.root), "dataset": self.dataset, "ok": self.ok, "images_on_disk": self.images_on_disk,
            "categories": self.categories(), "splits": self.splits(),
            "split_images": self.split_images, "triplets": self.triplets,
            "empty_captions": self.empty_captions, "tag_files": self.tag_files,
            "missing_images": len(self.missing_images), "triplets_affected": self.triplets_affected,
            "duplicate_ids": self.duplicate_ids, "corrupt_images": self.corrupt_images, "problems": self.problems,
        }

    def format(self) -> str:
        """Human-readable summary."""
        lines = [f"data set: {self.root} ({self.dataset} layout)",
                 f"categories: {', '.join(self.categories()) or 'none'}; splits: {', '.join(self.splits()) or 'none'}",
                 f"images on disk: {self.images_on_disk}; tag files: {self.tag_files}"]
        lines.append(f"{'category.split':<16}{'images':>8}{'triplets':>10}")
        for key in sorted(self.split_images):
            lines.append(f"{key:<16}{self.split_images[key]:>8}{self.triplets.get(key, 0):>10}")
        lines.append(f"empty captions (kept): {self.empty_captions}")
        lines.append(f"missing images: {len(self.missing_images)} (affecting {self.triplets_affected} triplets)"
                     + (f", e.g. {', '.join(self.missing_images[:5])}" if self.missing_images else ""))
        lines.append(f"duplicate ids: {len(self.duplicate_ids)}"
                     + (f", e.g. {', '.join(self.duplicate_ids[:5])}" if self.duplicate_ids else ""))
        lines.append(f"corrupt images: {len(self.corrupt_images)}")
        lines.extend(f"  {line}" for line in self.corrupt_images[:20])
        lines.append(f"file problems: {len(self.problems)}")
        lines.extend(f"  {line}" for line in self.problems)
        lines.append("result: OK" if self.ok else "result: PROBLEMS FOUND")
        return "\n".join(lines)


def check_dataset(root: str | Path, *, kind: str | None = None, verify_images: bool = True,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> CheckReport:
    """Validate every file of the data set at ``root`` (layout ``kind``, or the one recognised); never raises for
    problems in the data."""
    root = Path(root)
    report = CheckReport(root=root)
    if not root.is_dir():
        report.problems.append(f"{root}: data set folder not found")
        return report
    if kind is None:
        try:
            kind = detect_dataset(root)
        except ConfigError as exc:
            report.problems.append(str(exc))
            return report
        if kind is None:
            hint = CIRR.layout_hint(root)
            report.problems.append(f"{root}: not a data set folder of a known layout (expected {describe_layouts()})"
                                   + (f"; {hint}" if hint else ""))
            kind = DEFAULT_DATASET
    DATASETS.get(kind)  # an unknown name is a ConfigError naming the known ones
    if kind not in _CHECKS:
        raise ConfigError(f"cirlab data check has no checks for the {kind} layout")
    report.dataset = kind
    available = _CHECKS[kind](report)
    if verify_images:
        for image_id in progress(sorted(available), desc="checking images", unit="img"):
            try:
                load_image(available[image_id], max_pixels=max_pixels)
            except DataError as exc:
                report.corrupt_images.append(str(exc))
    return report


def _check_fashioniq(report: CheckReport) -> dict[str, Path]:
    """The FashionIQ layout's files; returns the referenced images that have a file (to decode)."""
    root = report.root
    try:
        available, ambiguous = scan_images(images_dir(root))
    except DataError as exc:
        report.problems.append(str(exc))
        available, ambiguous = {}, {}
    report.images_on_disk = len(available) + len(ambiguous)
    report.duplicate_ids.extend(
        f"{image_id} ({', '.join(p.name for p in paths)})" for image_id, paths in sorted(ambiguous.items()))

    referenced: set[str] = set()
    missing: set[str] = set()
    expected_files = {SPLITS_DIR: "split.<category>.<split>.json", CAPTIONS_DIR: "cap.<category>.<split>.json"}
    for folder, pattern in expected_files.items():
        if not (root / folder).is_dir():
            problem = f"no {folder} files found (the folder is missing; expected {pattern})"
            report.problems.append(f"{root / folder}: {problem}")
    for category in CATEGORIES:
        for split in SPLITS:
            key = f"{category}.{split}"
            sfile, cfile = split_file(root, category, split), captions_file(root, category, split)
            if not sfile.exists() and not cfile.exists():
                continue
            ids: list[str] = []
            try:
                ids = read_split_file(sfile)
            except DataError as exc:
                if sfile.parent.is_dir():
                    report.problems.append(str(exc))
                if "duplicate image id" in exc.problem:
                    report.duplicate_ids.append(f"{key}: {exc.problem}")
            report.split_images[key] = len(ids)
            referenced.update(ids)
            try:
                entries = read_caption_file(cfile, require_target=split != "test")
            except DataError as exc:
                if cfile.parent.is_dir():
                    report.problems.append(str(exc))
                entries = []
            report.triplets[key] = len(entries)
            split_set = set(ids)
            for i, entry in enumerate(entries):
                report.empty_captions += sum(1 for c in entry["captions"] if not c.strip())
                needed = [entry["candidate"]] + ([entry["target"]] if "target" in entry else [])
                referenced.update(needed)
                absent = [image_id for image_id in needed if image_id not in available]
                if absent:
                    missing.update(absent)
                    report.triplets_affected += 1
                outside = [image_id for image_id in needed if ids and image_id not in split_set]
                if outside:
                    report.problems.append(f"{cfile}: entry {i}: image {outside[0]!r} is not in {sfile.name}")
            tfile = tags_file(root, category, split)
            if tfile.exists():
                report.tag_files += 1
                try:
                    read_tags_file(tfile)
                except DataError as exc:
                    report.problems.append(str(exc))
    missing.update(image_id for image_id in referenced if image_id not in available and image_id not in ambiguous)
    report.missing_images = sorted(missing)
    if not report.split_images and (root / SPLITS_DIR).is_dir():
        report.problems.append(f"{root / SPLITS_DIR}: no split files found (expected split.<category>.<split>.json)")

    return {image_id: available[image_id] for image_id in referenced if image_id in available}


def _check_cirr(report: CheckReport) -> dict[str, Path]:
    """The CIRR layout's files; returns the referenced images that have a file (to decode)."""
    root = report.root
    reader = CIRR(root, categories=[SINGLE_CATEGORY])
    folder = cirr_layout.annotations_dir(root)
    for name, pattern in ((cirr_layout.SPLITS_DIR, "split.rc2.<split>.json"),
                          (cirr_layout.CAPTIONS_DIR, "cap.rc2.<split>.json")):
        if not (folder / name).is_dir():
            report.problems.append(f"{folder / name}: no {name} files found (the folder is missing; "
                                   f"expected {pattern})")
    placed: dict[str, str] = {}
    queries: dict[str, list[Triplet]] = {}
    for split in cirr_layout.SPLITS:
        sfile, cfile = cirr_layout.split_file(root, split), cirr_layout.captions_file(root, split)
        if not sfile.exists() and not cfile.exists():
            continue
        key = f"{SINGLE_CATEGORY}.{split}"
        paths: dict[str, str] = {}
        try:
            paths = reader.relative_paths(split)
        except DataError as exc:
            if sfile.exists():
                report.problems.append(str(exc))
            else:
                report.problems.append(f"{sfile}: file not found, but the caption file of {split} exists (its images "
                                       f"cannot be found without it)")
            if "appears twice" in exc.problem:
                report.duplicate_ids.append(f"{key}: {exc.problem}")
        report.split_images[key] = len(paths)
        for name, relative in paths.items():
            earlier = placed.setdefault(name, relative)
            if earlier != relative:
                report.duplicate_ids.append(f"{name} ({earlier}, {relative})")
        entries = []
        if cfile.exists():
            try:
                entries = reader.triplets(SINGLE_CATEGORY, split)
            except DataError as exc:
                report.problems.append(str(exc))
        report.triplets[key] = len(entries)
        queries[split] = entries
        for t in entries:
            report.empty_captions += sum(1 for c in t.captions if not c.strip())
            named = [t.reference, *([t.target] if t.target else []), *t.subset, *(name for name, _ in t.soft_targets)]
            outside = next((name for name in named if paths and name not in paths), None)
            if outside is not None:
                report.problems.append(f"{cfile}: entry {t.index}: image {outside!r} is not in {sfile.name}")
    present = {name: root / relative for name, relative in placed.items() if (root / relative).is_file()}
    report.images_on_disk = len(present)
    report.missing_images = sorted(set(placed) - set(present))
    missing = set(report.missing_images)
    for entries in queries.values():
        report.triplets_affected += sum(1 for t in entries if t.reference in missing or t.target in missing)
    return present


#: The checks of each layout: each fills the report and returns the referenced images that have a file.
_CHECKS: dict[str, Callable[[CheckReport], dict[str, Path]]] = {"fashioniq": _check_fashioniq, "cirr": _check_cirr}
