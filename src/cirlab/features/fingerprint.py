"""A cheap fingerprint of a data set, recorded in every feature cache.

What it covers:

- the exact bytes of every annotation file of the chosen categories (FashionIQ: caption, split and
  tag files; CIRR: caption and split files; every split whose file exists), together with each
  file's path relative to the data set root;
- the listing of the image folders: the name and byte size of every image file in them (FashionIQ:
  ``images/``, all categories, since one folder holds them all; CIRR: the folders the split files'
  paths point into), names relative to the reader's ``images_root``.

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

from cirlab.data.dataset import DatasetReader, open_dataset
from cirlab.data.layout import IMAGE_EXTENSIONS
from cirlab.errors import DataError

#: One line for manifests, saying what :func:`data_fingerprint` covers.
FINGERPRINT_COVERS = ("sha256 over the bytes of the caption, split and tag files of the listed categories and the "
                      "(name, size) listing of every image file in the image folders")


def _reader(source: str | Path | DatasetReader, categories: Sequence[str] | None = None) -> DatasetReader:
    """``source`` itself when it is a reader, else the data set at that folder (its layout recognised)."""
    if isinstance(source, DatasetReader):
        return source
    return open_dataset(source, categories=list(categories) if categories else None)


def annotation_files(source: str | Path | DatasetReader, categories: Sequence[str] | None = None) -> list[Path]:
    """The annotation files of ``categories`` (all by default) that exist in the data set ``source``."""
    return _reader(source, categories).annotation_files()


def image_listing(source: str | Path | DatasetReader) -> list[tuple[str, int]]:
    """``(file name, size in bytes)`` of every image file in the data set's image folders, sorted by name;
    names are relative to the reader's ``images_root`` (FashionIQ: plain file names)."""
    dataset = _reader(source)
    listing = []
    for folder in dataset.image_folders():
        if not folder.is_dir():
            if folder == dataset.images_root:
                raise DataError(folder, "images folder not found")
            continue  # CIRR: a split's image folder not downloaded (its images count as missing)
        prefix = folder.relative_to(dataset.images_root).as_posix() if folder != dataset.images_root else ""
        with os.scandir(folder) as entries:
            for entry in entries:
                if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                    listing.append((f"{prefix}/{entry.name}" if prefix else entry.name, entry.stat().st_size))
    return sorted(listing)


def data_fingerprint(source: str | Path | DatasetReader, categories: Sequence[str] | None = None) -> str:
    """Hex sha256 of the data set ``source`` (a reader, or a folder) restricted to ``categories`` (see the module
    notes)."""
    dataset = _reader(source, categories)
    digest = hashlib.sha256()
    for path in dataset.annotation_files():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(path, f"cannot read ({exc.strerror})") from None
        digest.update(f"file {path.relative_to(dataset.root).as_posix()} {len(data)}\n".encode())
        digest.update(data)
    for name, size in image_listing(dataset):
        digest.update(f"image {name} {size}\n".encode())
    return digest.hexdigest()
