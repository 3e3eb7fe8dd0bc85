"""A cheap fingerprint of a FashionIQ-layout data set, recorded in every feature cache.

What it covers:

- the exact bytes of every caption, split and tag file of the chosen categories (every split whose
  file exists), together with each file's path relative to the data set root;
- the listing of the images folder: the name and byte size of every image file in it (all
  categories, since one folder holds them all).

What it does not cover: image contents beyond their size (reading every image would make the
fingerprint as slow as extraction; a re-encoded image of identical size goes unnoticed here, but the
per-image pixel hashes stored in the cache's ``index.json`` record the contents), modification times
(copying a data set keeps its fingerprint), and files outside the layout.

Two data sets with the same fingerprint give the same feature cache for the same encoder and
preprocessing; any edit to a caption or split file, any added, removed, renamed or resized image
changes it, which is how a cache is recognised as stale.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from cirlab.data.layout import CATEGORIES, IMAGE_EXTENSIONS, SPLITS, captions_file, images_dir, split_file, tags_file
from cirlab.errors import DataError

#: One line for manifests, saying what :func:`data_fingerprint` covers.
FINGERPRINT_COVERS = ("sha256 over the bytes of the caption, split and tag files of the listed categories and the "
                      "(name, size) listing of every image file in images/")


def annotation_files(root: str | Path, categories: Sequence[str] | None = None) -> list[Path]:
    """The caption, split and tag files of ``categories`` (all by default) that exist under ``root``."""
    root = Path(root)
    files = []
    for category in categories or CATEGORIES:
        for split in SPLITS:
            for path in (captions_file(root, category, split), split_file(root, category, split),
                         tags_file(root, category, split)):
                if path.is_file():
                    files.append(path)
    return sorted(files)


def image_listing(root: str | Path) -> list[tuple[str, int]]:
    """``(file name, size in bytes)`` of every image file in the images folder, sorted by name."""
    folder = images_dir(Path(root))
    if not folder.is_dir():
        raise DataError(folder, "images folder not found")
    listing = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                listing.append((entry.name, entry.stat().st_size))
    return sorted(listing)


def data_fingerprint(root: str | Path, categories: Sequence[str] | None = None) -> str:
    """Hex sha256 of the data set at ``root`` restricted to ``categories`` (see the module notes)."""
    root = Path(root)
    digest = hashlib.sha256()
    for path in annotation_files(root, categories):
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(path, f"cannot read ({exc.strerror})") from None
        digest.update(f"file {path.relative_to(root).as_posix()} {len(data)}\n".encode())
        digest.update(data)
    for name, size in image_listing(root):
        digest.update(f"image {name} {size}\n".encode())
    return digest.hexdigest()
