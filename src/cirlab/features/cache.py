"""The feature cache: every image and every caption variant encoded once, read memory-mapped.

Layout of a cache folder::

    manifest.json   what was encoded and how (written last: a cache without it is incomplete)
    images.npy      [N_images, d] image features, rows in the order of ``index.json``'s ``image_ids``
    texts.npy       [N_triplets, 4, d] text features of the four caption forms (CAPTION_FORMS order;
                    the evaluation form "C1 and c2" is form 0)
    index.json      image ids, a content hash per image (of its decoded pixels, so that exact
                    duplicates under different ids can be recognised), the image rows of every
                    ``<category>.<split>``, and the triplet table

Features are stored as the encoder returns them (not normalised); consumers normalise where their
method does. Every file is written atomically and the manifest last, so a reader never sees a
half-written cache: :meth:`FeatureCache.open` refuses a folder whose manifest is missing, whose
arrays disagree with the manifest, or whose manifest does not match what the caller expects. A
cache's identity (what checkpoints, runs and indexes record to be tied to it) is
:meth:`FeatureCache.identity`, compared by :func:`cirlab.features.identity.check_identity`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cirlab.data.captions import CAPTION_FORMS, EVAL_FORM_INDEX
from cirlab.data.layout import CAPTIONS_DIR, IMAGES_DIR, SPLITS_DIR
from cirlab.errors import CacheMismatchError
from cirlab.features.identity import describe_differences, identity_differences, manifest_identity
from cirlab.features.partial import PARTIAL_DIR
from cirlab.io import atomic_path, atomic_write_json

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
IMAGES_FILE = "images.npy"
TEXTS_FILE = "texts.npy"
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class TripletTable:
    """Every triplet in the cache, as parallel arrays (one entry per triplet, in ``texts.npy`` order)."""

    categories: np.ndarray  # [T] str
    splits: np.ndarray  # [T] str
    file_index: np.ndarray  # [T] int64, position in the caption file
    reference_rows: np.ndarray  # [T] int64, row in images.npy
    target_rows: np.ndarray  # [T] int64, row in images.npy, -1 when the split withholds targets
    captions: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.file_index)

    def select(self, categories: list[str] | tuple[str, ...], split: str) -> np.ndarray:
        """Positions of the triplets of ``split`` in ``categories``, in cache order."""
        mask = np.isin(self.categories, list(categories)) & (self.splits == split)
        return np.flatnonzero(mask)


class FeatureCache:
    """A read-only view of a feature cache folder; arrays are memory-mapped, not loaded."""

    def __init__(self, root: Path, manifest: dict[str, Any], index: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.image_ids: list[str] = index["image_ids"]
        self._row_of = {image_id: row for row, image_id in enumerate(self.image_ids)}
        self.image_hashes: list[str] = index.get("image_hashes") or [""] * len(self.image_ids)
        self._split_rows = {key: np.asarray(rows, dtype=np.int64) for key, rows in index["split_rows"].items()}
        t = index["triplets"]
        self.triplets = TripletTable(
            categories=np.asarray(t["category"], dtype=object).astype(str),
            splits=np.asarray(t["split"], dtype=object).astype(str),
            file_index=np.asarray(t["file_index"], dtype=np.int64),
            reference_rows=np.asarray(t["reference_row"], dtype=np.int64),
            target_rows=np.asarray(t["target_row"], dtype=np.int64),
            captions=[(a, b) for a, b in t["captions"]],
        )
        self.image_features: np.ndarray = np.load(root / IMAGES_FILE, mmap_mode="r")
        self.text_features: np.ndarray = np.load(root / TEXTS_FILE, mmap_mode="r")
        self._validate_shapes()

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, root: str | Path, expect: dict[str, Any] | None = None) -> FeatureCache:
        """Open the cache at ``root``; refuse it when incomplete, inconsistent or not as expected.

        ``expect`` maps identity keys (see :data:`~cirlab.features.identity.IDENTITY_KEYS`) to the
        values the caller needs, for example the model name and the data set's fingerprint (``None``
        values are not compared); any difference raises :class:`CacheMismatchError` naming the keys,
        the expected and the cached values.
        """
        root = Path(root)
        manifest_path = root / MANIFEST_FILE
        if not root.is_dir():
            raise CacheMismatchError(f"{root}: feature cache folder not found")
        if not manifest_path.exists():
            raise CacheMismatchError(_not_a_cache(root))
        manifest = _read_json(manifest_path)
        if manifest.get("format_version") != FORMAT_VERSION:
            raise CacheMismatchError(f"{manifest_path}: cache format {manifest.get('format_version')!r}, "
                                     f"this cirlab reads format {FORMAT_VERSION}; extract the cache again")
        for name in (IMAGES_FILE, TEXTS_FILE, INDEX_FILE):
            if not (root / name).exists():
                raise CacheMismatchError(f"{root / name}: missing from the feature cache")
        if expect:
            differences = identity_differences(expect, manifest, [key for key, value in expect.items()
                                                                  if value is not None])
            if differences:
                raise CacheMismatchError(f"{manifest_path}: stale or mismatched cache "
                                         f"({describe_differences(differences, 'expected', 'cache has')})")
        return cls(root, manifest, _read_json(root / INDEX_FILE))

    def _validate_shapes(self) -> None:
        dim = self.manifest.get("dim")
        images, texts = self.image_features, self.text_features
        problems = []
        if images.ndim != 2 or images.shape[0] != len(self.image_ids) or images.shape[1] != dim:
            problems.append(f"{IMAGES_FILE} has shape {images.shape}, expected ({len(self.image_ids)}, {dim})")
        if texts.ndim != 3 or texts.shape != (len(self.triplets), len(CAPTION_FORMS), dim):
            problems.append(f"{TEXTS_FILE} has shape {texts.shape}, "
                            f"expected ({len(self.triplets)}, {len(CAPTION_FORMS)}, {dim})")
        if problems:
            raise CacheMismatchError(f"{self.root}: inconsistent cache: {'; '.join(problems)}")

    # ---------------------------------------------------------------- queries
    def identity(self) -> dict[str, Any]:
        """What identifies this cache: the manifest values of
        :data:`~cirlab.features.identity.IDENTITY_KEYS` (keys the manifest lacks are left out).

        Checkpoints, training runs and indexes record it, and
        :func:`~cirlab.features.identity.check_identity` compares a record with a cache.
        """
        return manifest_identity(self.manifest)

    @property
    def dim(self) -> int:
        """Feature dimension."""
        return int(self.manifest["dim"])

    def row_of(self, image_id: str) -> int:
        """Row of ``image_id`` in :attr:`image_features`."""
        try:
            return self._row_of[image_id]
        except KeyError:
            raise CacheMismatchError(f"{self.root}: image {image_id!r} is not in the feature cache") from None

    def has_split(self, category: str, split: str) -> bool:
        """Whether the cache holds the images of ``category``/``split``."""
        return f"{category}.{split}" in self._split_rows

    def split_rows(self, category: str, split: str) -> np.ndarray:
        """Image rows of ``split.<category>.<split>.json`` (after the missing-image policy)."""
        key = f"{category}.{split}"
        if key not in self._split_rows:
            raise CacheMismatchError(f"{self.root}: the cache holds no images of {key}; "
                                     f"it has {', '.join(sorted(self._split_rows))}")
        return self._split_rows[key]

    def categories(self) -> list[str]:
        """Categories present in the cache."""
        return sorted({key.split(".")[0] for key in self._split_rows})

    def eval_text_features(self, positions: np.ndarray) -> np.ndarray:
        """Text features of the evaluation form for the triplets at ``positions``."""
        return np.asarray(self.text_features[positions, EVAL_FORM_INDEX])


def write_cache(root: str | Path, *, image_ids: list[str], image_features: np.ndarray,
                split_rows: dict[str, list[int]], triplets: list[dict[str, Any]], text_features: np.ndarray,
                manifest: dict[str, Any], image_hashes: list[str] | None = None) -> Path:
    """Write a complete cache folder atomically, file by file, the manifest last.

    ``triplets`` holds one dict per row of ``text_features`` with keys ``category``, ``split``,
    ``file_index``, ``reference_row``, ``target_row`` and ``captions``. ``manifest`` holds at
    least ``model``, ``preprocess`` and ``data_fingerprint``; ``dim``, ``dtype``, the caption forms
    and the format version are filled in here. ``image_hashes`` holds one content hash per image
    (equal hashes = identical pixels), used by the false-negative guard.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_FILE).unlink(missing_ok=True)  # the cache is incomplete until the manifest is back
    image_features = np.ascontiguousarray(image_features)
    text_features = np.ascontiguousarray(text_features)
    for name, array in ((IMAGES_FILE, image_features), (TEXTS_FILE, text_features)):
        with atomic_path(root / name) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
    columns = ("category", "split", "file_index", "reference_row", "target_row", "captions")
    index = {
        "image_ids": list(image_ids),
        "image_hashes": list(image_hashes) if image_hashes is not None else None,
        "split_rows": {key: [int(r) for r in rows] for key, rows in split_rows.items()},
        "triplets": {column: [t[column] for t in triplets] for column in columns},
    }
    atomic_write_json(root / INDEX_FILE, index)
    full_manifest = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "dim": int(image_features.shape[1]),
        "dtype": str(image_features.dtype),
        "num_images": len(image_ids),
        "num_triplets": len(triplets),
        "caption_forms": list(CAPTION_FORMS),
        "eval_form_index": EVAL_FORM_INDEX,
    }
    atomic_write_json(root / MANIFEST_FILE, full_manifest)
    return root


def _not_a_cache(root: Path) -> str:
    """Why ``root``, a folder without a manifest, cannot be opened, and what to run."""
    if (root / PARTIAL_DIR).is_dir() or any((root / name).exists() for name in (IMAGES_FILE, TEXTS_FILE, INDEX_FILE)):
        return (f"{root}: no {MANIFEST_FILE}; the cache is incomplete (extraction did not finish) — run "
                f"`cirlab extract` again to resume it")
    if any((root / name).is_dir() for name in (CAPTIONS_DIR, SPLITS_DIR, IMAGES_DIR)):
        return (f"{root}: not a feature cache (it looks like a data set); run `cirlab extract --data {root} "
                f"--out CACHE` first")
    return f"{root}: not a feature cache (no {MANIFEST_FILE}); run `cirlab extract --data DATA --out {root}` first"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheMismatchError(f"{path}: unreadable ({exc})") from None
