"""The feature cache: every image and every caption variant encoded once, read memory-mapped.

Layout of a cache folder::

    manifest.json   what was encoded and how (written last: a cache without it is incomplete)
    images.npy      [N_images, d] image features, rows in the order of ``index.json``'s ``image_ids``
    texts.npy       [N_triplets, F, d] text features of the data set's F caption forms (the manifest's
                    ``caption_forms``, in order; ``eval_form_index`` names the one evaluation encodes:
                    FashionIQ has four, "C1 and c2" first and evaluated, CIRR one, its caption)
    index.json      image ids, a content hash per image (of its decoded pixels, so that exact
                    duplicates under different ids can be recognised), the image rows of every
                    ``<category>.<split>``, and the triplet table

The manifest's ``dataset`` names the layout the cache was extracted from (``fashioniq``, ``cirr``; a
cache written before CIRR has none and is FashionIQ's). The triplet table holds, per triplet, its
category, split, position in its caption file, reference and target rows (-1: withheld) and captions
(a list of any length); the data set's query records, where it has them, are optional columns:
``query_id`` (CIRR's ``pairid``), ``subset_rows`` (the image rows of its subset) and ``soft_targets``
(``[row, score]`` pairs of other images that satisfy it).

Features are stored as the encoder returns them (not normalised); consumers normalise where their
method does. Every file is written atomically and the manifest last, so a reader never sees a
half-written cache: :meth:`FeatureCache.open` refuses a folder whose manifest is missing, whose
arrays disagree with the manifest, or whose manifest does not match what the caller expects. A
cache's identity (what checkpoints, runs and indexes record to be tied to it) is
:meth:`FeatureCache.identity`, compared by :func:`cirlab.features.identity.check_identity`.

Damage is refused, never used. The manifest's ``files`` records the size and sha256 of the other
three files (:mod:`cirlab.hashing`); :meth:`FeatureCache.open` checks ``index.json`` on every open (it
is parsed whole anyway; FashionIQ's is 10 MB, some 6 ms to hash) and the two arrays once, remembering
the verification in a stamp beside them until a file changes: reading and hashing FashionIQ's 500 MB
of RN50x4 arrays takes about 0.6 s, paid by the first open after the files have settled (and by every
open of a cache in a folder the user cannot write); a stamped open adds two ``stat`` calls. Every file
is also checked for structure (a truncated, re-headed, empty or pickled array, an index of the wrong
shape, rows out of range), which is what protects a cache written before the manifest recorded
hashes: such a cache is opened without the content check. Each problem is a one-line
:class:`~cirlab.errors.CacheMismatchError` naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from cirlab.data.dataset import DEFAULT_DATASET, dataset_class
from cirlab.data.layout import CAPTIONS_DIR, IMAGES_DIR, SPLITS_DIR
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.features.identity import describe_differences, identity_differences, manifest_identity
from cirlab.features.partial import PARTIAL_DIR
from cirlab.hashing import checked_records, file_record, read_verified, verify_file
from cirlab.io import atomic_path, atomic_write_json

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
IMAGES_FILE = "images.npy"
TEXTS_FILE = "texts.npy"
INDEX_FILE = "index.json"
#: The subset of a triplet that has none (shared, read-only).
_NO_ROWS = np.zeros(0, dtype=np.int64)
_NO_ROWS.setflags(write=False)
#: What to do about a damaged or malformed cache.
REBUILD = "extract the cache again (`cirlab extract ... --overwrite`)"
#: The columns of ``index.json``'s triplet table.
TRIPLET_COLUMNS: tuple[str, ...] = ("category", "split", "file_index", "reference_row", "target_row", "captions")
#: Optional columns of the triplet table (written when the data set records them), with the value of a triplet
#: that has none.
OPTIONAL_COLUMNS: dict[str, Any] = {"query_id": "", "subset_rows": [], "soft_targets": []}


@dataclass(frozen=True)
class TripletTable:
    """Every triplet in the cache, as parallel arrays (one entry per triplet, in ``texts.npy`` order)."""

    categories: np.ndarray  # [T] str
    splits: np.ndarray  # [T] str
    file_index: np.ndarray  # [T] int64, position in the caption file
    reference_rows: np.ndarray  # [T] int64, row in images.npy
    target_rows: np.ndarray  # [T] int64, row in images.npy, -1 when the split withholds targets
    captions: list[tuple[str, ...]]  # the data set's captions (FashionIQ: two, CIRR: one)
    query_ids: np.ndarray  # [T] str, the data set's query id (CIRR's pairid), "" when none
    subset_rows: list[np.ndarray]  # per triplet, int64 image rows of its subset (CIRR's img_set), empty when none
    soft_targets: list[dict[int, float]]  # per triplet, image row → score of other valid targets (CIRR), or {}

    def __len__(self) -> int:
        return len(self.file_index)

    def select(self, categories: list[str] | tuple[str, ...], split: str) -> np.ndarray:
        """Positions of the triplets of ``split`` in ``categories``, in cache order."""
        mask = np.isin(self.categories, list(categories)) & (self.splits == split)
        return np.flatnonzero(mask)


class FeatureCache:
    """A read-only view of a feature cache folder; arrays are memory-mapped, not loaded."""

    def __init__(self, root: Path, manifest: dict[str, Any], index: dict[str, Any]) -> None:
        """A cache from its folder, parsed manifest and parsed ``index.json``; checks the structure of the
        index and the arrays, then the arrays' content hashes (see the module notes)."""
        self.root = root
        self.manifest = manifest
        self.dataset, self.caption_forms, self.eval_form_index = _data_set_record(manifest, root / MANIFEST_FILE)
        self.image_ids, self.image_hashes, self._split_rows, self.triplets = _parse_index(index, root / INDEX_FILE)
        self._row_of = {image_id: row for row, image_id in enumerate(self.image_ids)}
        records = checked_records(manifest.get("files"), root / MANIFEST_FILE)
        self.image_features: np.ndarray = _load_array(root / IMAGES_FILE, records.get(IMAGES_FILE))
        self.text_features: np.ndarray = _load_array(root / TEXTS_FILE, records.get(TEXTS_FILE))
        self._validate_shapes()
        for name in (IMAGES_FILE, TEXTS_FILE):
            verify_file(root / name, records.get(name), recorded_in=root / MANIFEST_FILE, advice=REBUILD,
                        remember=True)

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
        if not isinstance(manifest, dict):
            raise CacheMismatchError(f"{manifest_path}: not a feature cache manifest (a JSON {_json_kind(manifest)}, "
                                     f"expected an object); {REBUILD}")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise CacheMismatchError(f"{manifest_path}: cache format {manifest.get('format_version')!r}, "
                                     f"this cirlab reads format {FORMAT_VERSION}; extract the cache again")
        dim = manifest.get("dim")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise CacheMismatchError(f"{manifest_path}: malformed manifest (dim is {dim!r}, expected a positive "
                                     f"integer); {REBUILD}")
        for name in (IMAGES_FILE, TEXTS_FILE, INDEX_FILE):
            if not (root / name).exists():
                raise CacheMismatchError(f"{root / name}: missing from the feature cache")
        records = checked_records(manifest.get("files"), manifest_path)
        if expect:
            differences = identity_differences(expect, manifest, [key for key, value in expect.items()
                                                                  if value is not None])
            if differences:
                raise CacheMismatchError(f"{manifest_path}: stale or mismatched cache "
                                         f"({describe_differences(differences, 'expected', 'cache has')})")
        index_path = root / INDEX_FILE
        try:
            data = read_verified(index_path, records.get(INDEX_FILE), recorded_in=manifest_path, advice=REBUILD)
        except OSError as exc:
            raise CacheMismatchError(f"{index_path}: unreadable ({exc.strerror or exc})") from None
        return cls(root, manifest, _parse_json(data, index_path))

    def _validate_shapes(self) -> None:
        dim = self.manifest.get("dim")
        images, texts = self.image_features, self.text_features
        problems = []
        if images.ndim != 2 or images.shape[0] != len(self.image_ids) or images.shape[1] != dim:
            problems.append(f"{IMAGES_FILE} has shape {images.shape}, expected ({len(self.image_ids)}, {dim})")
        forms = len(self.caption_forms)
        if texts.ndim != 3 or texts.shape != (len(self.triplets), forms, dim):
            problems.append(f"{TEXTS_FILE} has shape {texts.shape}, expected ({len(self.triplets)}, {forms}, {dim})")
        recorded_dtype = self.manifest.get("dtype")
        if recorded_dtype is not None and str(images.dtype) != recorded_dtype:
            problems.append(f"{IMAGES_FILE} holds {images.dtype}, the manifest records {recorded_dtype}")
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
        """Text features of the evaluation form (``eval_form_index``) for the triplets at ``positions``."""
        return np.asarray(self.text_features[positions, self.eval_form_index])

    def eval_caption(self, position: int) -> str:
        """The text the evaluation form encoded for the triplet at ``position`` (FashionIQ: "C1 and c2")."""
        return dataset_class(self.dataset).caption_texts(self.triplets.captions[position])[self.eval_form_index]


def write_cache(root: str | Path, *, image_ids: list[str], image_features: np.ndarray,
                split_rows: dict[str, list[int]], triplets: list[dict[str, Any]], text_features: np.ndarray,
                manifest: dict[str, Any], image_hashes: list[str] | None = None) -> Path:
    """Write a complete cache folder atomically, file by file, the manifest last.

    ``triplets`` holds one dict per row of ``text_features`` with keys ``category``, ``split``,
    ``file_index``, ``reference_row``, ``target_row`` and ``captions``, and optionally those of
    :data:`OPTIONAL_COLUMNS` (a column is written when any triplet has its key). ``manifest`` holds at
    least ``model``, ``preprocess`` and ``data_fingerprint``, and ``dataset`` (the layout; FashionIQ when
    absent); ``dim``, ``dtype``, the data set's caption forms and evaluation form, and the format version
    are filled in here, with the size and sha256 of every other file (``files``, checked by
    :meth:`FeatureCache.open`). ``image_hashes`` holds one content hash per image (equal hashes =
    identical pixels), used by the false-negative guard.
    """
    reader = dataset_class(manifest.get("dataset", DEFAULT_DATASET))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_FILE).unlink(missing_ok=True)  # the cache is incomplete until the manifest is back
    image_features = np.ascontiguousarray(image_features)
    text_features = np.ascontiguousarray(text_features)
    if text_features.ndim != 3 or text_features.shape[1] != len(reader.caption_forms):
        raise ValueError(f"text features of shape {text_features.shape}: {reader.registry_name} has "
                         f"{len(reader.caption_forms)} caption forms")
    files = {}
    for name, array in ((IMAGES_FILE, image_features), (TEXTS_FILE, text_features)):
        with atomic_path(root / name) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
        files[name] = file_record(root / name)
    index = {
        "image_ids": list(image_ids),
        "image_hashes": list(image_hashes) if image_hashes is not None else None,
        "split_rows": {key: [int(r) for r in rows] for key, rows in split_rows.items()},
        "triplets": {column: [t[column] for t in triplets] for column in TRIPLET_COLUMNS},
    }
    for column, default in OPTIONAL_COLUMNS.items():
        if any(column in t for t in triplets):
            index["triplets"][column] = [t.get(column, default) for t in triplets]
    atomic_write_json(root / INDEX_FILE, index)
    files[INDEX_FILE] = file_record(root / INDEX_FILE)
    full_manifest = {
        **manifest,
        "dataset": reader.registry_name,
        "format_version": FORMAT_VERSION,
        "dim": int(image_features.shape[1]),
        "dtype": str(image_features.dtype),
        "num_images": len(image_ids),
        "num_triplets": len(triplets),
        "caption_forms": list(reader.caption_forms),
        "eval_form_index": reader.eval_form_index,
        "files": files,
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
        data = path.read_bytes()
    except OSError as exc:
        raise CacheMismatchError(f"{path}: unreadable ({exc.strerror or exc})") from None
    return _parse_json(data, path)


def _parse_json(data: bytes, path: Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CacheMismatchError(f"{path}: unreadable ({type(exc).__name__}: {exc}); {REBUILD}") from None


def _load_array(path: Path, record: dict[str, Any] | None) -> np.ndarray:
    """The array in ``path``, memory-mapped; a file ``np.load`` cannot map, or that holds no floats, is an error.

    A file that fails to map and whose size differs from ``record`` is reported as truncated.
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        verify_file(path, record, recorded_in=path.parent / MANIFEST_FILE, advice=REBUILD)  # damage, if recorded
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CacheMismatchError(f"{path}: unreadable feature array ({problem}); {REBUILD}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under the array's name
        array.close()
        raise CacheMismatchError(f"{path}: not a .npy array (an .npz archive?); {REBUILD}")
    if array.dtype.kind != "f":
        raise CacheMismatchError(f"{path}: holds {array.dtype} values, expected floating-point features; {REBUILD}")
    return array


def _parse_index(index: Any, path: Path) -> tuple[list[str], list[str], dict[str, np.ndarray], TripletTable]:
    """Image ids, image hashes, split rows and the triplet table of a parsed ``index.json``, each checked.

    Every row number must name an image of the cache (a target row may be -1: withheld), so that a
    damaged index fails here, in one line, rather than as an ``IndexError`` deep in training.
    """

    def malformed(problem: str) -> CacheMismatchError:
        return CacheMismatchError(f"{path}: malformed cache index ({problem}); {REBUILD}")

    if not isinstance(index, dict):
        raise malformed(f"a JSON {_json_kind(index)}, expected an object")
    for key, kind in (("image_ids", list), ("split_rows", dict), ("triplets", dict)):
        if key not in index:
            raise malformed(f"no {key!r}")
        if not isinstance(index[key], kind):
            raise malformed(f"{key!r} is a JSON {_json_kind(index[key])}, expected a JSON {_json_kind(kind())}")
    image_ids = index["image_ids"]
    if not _all_of_type(image_ids, str):
        raise malformed("'image_ids' holds a value that is not a string")
    count = len(image_ids)
    hashes = index.get("image_hashes")
    if hashes is None:
        hashes = [""] * count
    elif not isinstance(hashes, list) or len(hashes) != count or not _all_of_type(hashes, str):
        raise malformed(f"'image_hashes' is not a list of {count} strings, one per image")

    def numbers(values: Any, what: str) -> np.ndarray:
        array = _whole_numbers(values)
        if array is None:
            raise malformed(f"{what} is not a list of whole numbers")
        return array

    def rows(values: Any, what: str, low: int = 0) -> np.ndarray:
        array = numbers(values, what)
        outside = array[(array < low) | (array >= count)]
        if len(outside):
            raise malformed(f"{what} names image row {int(outside[0])}, but the cache holds {count} images")
        return array

    split_rows = {str(key): rows(value, f"split {key!r}") for key, value in index["split_rows"].items()}
    table = index["triplets"]
    missing = [column for column in TRIPLET_COLUMNS if column not in table]
    if missing:
        raise malformed(f"the triplet table lacks {', '.join(missing)}")
    lengths = {len(table[column]) if isinstance(table[column], list) else -1 for column in TRIPLET_COLUMNS}
    if len(lengths) != 1 or -1 in lengths:
        raise malformed("the triplet columns are not lists of one length")
    for column in ("category", "split"):
        if not _all_of_type(table[column], str):
            raise malformed(f"triplet column {column!r} holds a value that is not a string")
    captions = table["captions"]
    if not (_all_of_type(captions, list) and 0 not in set(map(len, captions))
            and _all_of_type(chain.from_iterable(captions), str)):
        raise malformed("triplet column 'captions' holds a value that is not a list of strings")
    size = len(table["file_index"])
    optional = {column: table.get(column, None) for column in OPTIONAL_COLUMNS}
    for column, values in optional.items():
        if values is not None and (not isinstance(values, list) or len(values) != size):
            raise malformed(f"triplet column {column!r} is not a list of {size} values, one per triplet")
    query_ids = optional["query_id"]
    if query_ids is not None and not _all_of_type(query_ids, str):
        raise malformed("triplet column 'query_id' holds a value that is not a string")
    triplets = TripletTable(
        categories=np.asarray(table["category"], dtype=object).astype(str),
        splits=np.asarray(table["split"], dtype=object).astype(str),
        file_index=numbers(table["file_index"], "triplet column 'file_index'"),
        reference_rows=rows(table["reference_row"], "triplet column 'reference_row'"),
        target_rows=rows(table["target_row"], "triplet column 'target_row'", low=-1),  # -1: target withheld
        captions=[tuple(c) for c in captions],
        query_ids=np.asarray(query_ids if query_ids is not None else [""] * size, dtype=str),
        subset_rows=_row_lists(optional["subset_rows"], size, rows, malformed),
        soft_targets=_soft_targets(optional["soft_targets"], size, rows, malformed),
    )
    return image_ids, hashes, split_rows, triplets


def _row_lists(values: list[Any] | None, size: int, rows: Callable[[Any, str], np.ndarray],
               malformed: Callable[[str], CacheMismatchError]) -> list[np.ndarray]:
    """The ``subset_rows`` column as one int64 array per triplet (empty ones when the column is absent)."""
    if values is None:
        return [_NO_ROWS] * size
    if not _all_of_type(values, list):
        raise malformed("triplet column 'subset_rows' holds a value that is not a list of image rows")
    flat = rows(list(chain.from_iterable(values)), "triplet column 'subset_rows'")
    return np.split(flat, np.cumsum([len(v) for v in values])[:-1]) if size else []


def _soft_targets(values: list[Any] | None, size: int, rows: Callable[[Any, str], np.ndarray],
                  malformed: Callable[[str], CacheMismatchError]) -> list[dict[int, float]]:
    """The ``soft_targets`` column as one ``{image row: score}`` per triplet (empty ones when it is absent)."""
    if values is None:
        return [{} for _ in range(size)]
    pairs = list(chain.from_iterable(values)) if _all_of_type(values, list) else None
    if pairs is None or not _all_of_type(pairs, list) or set(map(len, pairs)) - {2}:
        raise malformed("triplet column 'soft_targets' holds a value that is not a list of [row, score] pairs")
    targets = rows([pair[0] for pair in pairs], "triplet column 'soft_targets'").tolist()
    scores = [pair[1] for pair in pairs]
    if not set(map(type, scores)) <= {int, float} or not all(math.isfinite(score) for score in scores):
        raise malformed("triplet column 'soft_targets' holds a score that is not a finite number")
    result, start = [], 0
    for value in values:
        stop = start + len(value)
        result.append({row: float(score) for row, score in zip(targets[start:stop], scores[start:stop])})
        start = stop
    return result


def _data_set_record(manifest: dict[str, Any], path: Path) -> tuple[str, tuple[str, ...], int]:
    """The manifest's data set layout, caption forms and evaluation form index, each checked.

    A manifest without ``dataset`` (written before CIRR) is FashionIQ's; one without caption forms or an
    evaluation index has its data set's own.
    """
    def malformed(problem: str) -> CacheMismatchError:
        return CacheMismatchError(f"{path}: malformed manifest ({problem}); {REBUILD}")

    kind = manifest.get("dataset", DEFAULT_DATASET)
    if not isinstance(kind, str) or not kind:
        raise malformed(f"dataset is {kind!r}, expected a data set name")
    if "caption_forms" in manifest and "eval_form_index" in manifest:
        forms, eval_index = manifest["caption_forms"], manifest["eval_form_index"]
    else:
        try:
            reader = dataset_class(kind)
        except ConfigError as exc:
            raise malformed(f"no caption forms, and {exc}") from None
        forms = manifest.get("caption_forms", list(reader.caption_forms))
        eval_index = manifest.get("eval_form_index", reader.eval_form_index)
    if not isinstance(forms, list) or not forms or not _all_of_type(forms, str):
        raise malformed(f"caption_forms is {forms!r}, expected a list of names")
    if isinstance(eval_index, bool) or not isinstance(eval_index, int) or not 0 <= eval_index < len(forms):
        raise malformed(f"eval_form_index is {eval_index!r}, expected a position in caption_forms")
    return kind, tuple(forms), eval_index


def _whole_numbers(values: Any) -> np.ndarray | None:
    """``values`` (a JSON list of integers) as int64, or ``None`` when it is anything else."""
    if not isinstance(values, list):
        return None
    if not values:
        return np.zeros(0, dtype=np.int64)
    try:
        array = np.asarray(values)
    except ValueError:  # a ragged nested list
        return None
    return array.astype(np.int64) if array.ndim == 1 and array.dtype.kind in "iu" else None


def _all_of_type(values: Iterable[Any], kind: type) -> bool:
    """Whether every one of ``values`` is exactly a ``kind`` (as JSON decoding makes them); C-speed on long lists."""
    return set(map(type, values)) <= {kind}


def _json_kind(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    kinds = ((bool, "boolean"), (dict, "object"), (list, "array"), (str, "string"), ((int, float), "number"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")
