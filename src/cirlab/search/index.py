"""A gallery index on disk: a faiss index of L2-normalised image features plus a manifest.

Layout of an index folder::

    index.faiss     faiss index (IndexFlatIP, or IndexIVFFlat with inner product); row i is ids[i]
    manifest.json   what the index holds and how it was made (written last: no manifest, no index)

The manifest ties the index to the feature cache it was built from (the cache's path and identity,
:meth:`~cirlab.features.cache.FeatureCache.identity`), names the encoder that made those features,
and lists the gallery ids in index order with each id's categories (an image may belong to two
categories: FashionIQ's shirt and toptee splits share images). Scores are inner products of unit
vectors, that is cosine similarities.

The manifest also records the size and sha256 of ``index.faiss`` (``files``, see :mod:`cirlab.hashing`),
checked on every load before faiss reads the file (an index holds one split's gallery: FashionIQ's
15k val images at 640 dimensions are 40 MB, about 25 ms to hash), so damaged bytes are refused in one
line instead of ranking the gallery by garbage; an index written before the record existed loads
unchecked. As a last guard, a search whose scores leave [-1, 1] (beyond float rounding) is an error
naming the index file: no cosine similarity can.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cirlab.errors import CacheMismatchError
from cirlab.features.identity import check_identity
from cirlab.hashing import DamagedFileError, checked_records, file_record, verify_file
from cirlab.io import atomic_path, atomic_write_json
from cirlab.search.errors import QueryError

if TYPE_CHECKING:
    from cirlab.features.cache import FeatureCache

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
MANIFEST_FILE = "manifest.json"
INDEX_KINDS: tuple[str, ...] = ("flat", "ivf")
#: What to do about a damaged or malformed index.
REBUILD = "build the index again with `cirlab index`"
#: How far a query's norm may exceed 1, and a score's magnitude (1 + 3x this) may exceed 1, through rounding.
UNIT_TOLERANCE = 1e-3


@dataclass
class IndexManifest:
    """The contents of ``manifest.json``."""

    kind: str  # "flat" (exact inner product) or "ivf" (inverted lists, approximate)
    dim: int  # feature dimension
    ids: list[str]  # gallery ids in index order
    id_categories: list[list[str]]  # categories of each id (usually one)
    split: str  # the split whose images form the gallery
    features: dict[str, Any]  # the feature cache: its path and its identity
    encoder: dict[str, Any]  # EncoderSpec.to_dict() form of the encoder that made the features
    data_root: str | None = None  # the data set the features came from, when the cache records it
    nlist: int | None = None  # IVF only: number of inverted lists
    nprobe: int | None = None  # IVF only: lists visited per query
    ivf_recall_at_10: float | None = None  # IVF only: overlap of its top 10 with the exact top 10
    recall_queries: int = 0  # IVF only: queries that recall was measured on
    extra: dict[str, Any] = field(default_factory=dict)  # anything else a newer writer added
    files: dict[str, Any] = field(default_factory=dict)  # size and sha256 of index.faiss, set by write_index

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the format version."""
        return {
            "format_version": FORMAT_VERSION, "kind": self.kind, "metric": "inner_product", "dim": self.dim,
            "size": len(self.ids), "nlist": self.nlist, "nprobe": self.nprobe,
            "ivf_recall_at_10": self.ivf_recall_at_10, "recall_queries": self.recall_queries,
            "split": self.split, "categories": self.categories(), "features": self.features,
            "encoder": self.encoder, "data_root": self.data_root, **self.extra, "files": self.files,
            "ids": self.ids, "id_categories": self.id_categories,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> IndexManifest:
        """Read a manifest dict; a missing key or wrong format version is a one-line error naming ``path``."""
        if not isinstance(data, dict):
            kind = "array" if isinstance(data, list) else type(data).__name__
            raise CacheMismatchError(f"{path}: not an index manifest (a JSON {kind}, expected an object); {REBUILD}")
        if data.get("format_version") != FORMAT_VERSION:
            raise CacheMismatchError(f"{path}: index format {data.get('format_version')!r}, this cirlab reads "
                                     f"format {FORMAT_VERSION}; build the index again with `cirlab index`")
        known = {"format_version", "kind", "metric", "dim", "size", "nlist", "nprobe", "ivf_recall_at_10",
                 "recall_queries", "split", "categories", "features", "encoder", "data_root", "ids",
                 "id_categories", "files"}
        try:
            ids, id_categories = data["ids"], data["id_categories"]
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise TypeError("'ids' is not a list of strings")
            if not isinstance(id_categories, list) or not all(
                    isinstance(c, list) and all(isinstance(name, str) for name in c) for c in id_categories):
                raise TypeError("'id_categories' is not a list of lists of strings")
            manifest = cls(kind=data["kind"], dim=int(data["dim"]), ids=list(ids),
                           id_categories=[list(c) for c in id_categories], split=data["split"],
                           features=dict(data["features"]), encoder=dict(data["encoder"]),
                           data_root=data.get("data_root"), nlist=data.get("nlist"), nprobe=data.get("nprobe"),
                           ivf_recall_at_10=data.get("ivf_recall_at_10"),
                           recall_queries=int(data.get("recall_queries") or 0),
                           extra={k: v for k, v in data.items() if k not in known},
                           files=checked_records(data.get("files"), path))
        except (KeyError, TypeError, ValueError) as exc:
            raise CacheMismatchError(f"{path}: malformed index manifest ({type(exc).__name__}: {exc}); "
                                     f"{REBUILD}") from None
        if manifest.kind not in INDEX_KINDS:
            raise CacheMismatchError(f"{path}: unknown index kind {manifest.kind!r}")
        if len(manifest.id_categories) != len(manifest.ids):
            raise CacheMismatchError(f"{path}: {len(manifest.ids)} ids but {len(manifest.id_categories)} "
                                     f"category lists")
        return manifest

    def categories(self) -> list[str]:
        """Categories present in the gallery, in order of first appearance."""
        seen: dict[str, None] = {}
        for categories in self.id_categories:
            for category in categories:
                seen.setdefault(category, None)
        return list(seen)


class GalleryIndex:
    """A loaded index: the faiss index, its manifest, and per-category filters.

    Searching is safe from several threads at once (faiss searches are read-only); each call builds
    its own search parameters.
    """

    def __init__(self, root: Path, index: Any, manifest: IndexManifest) -> None:
        self.root = Path(root)
        self.index = index
        self.manifest = manifest
        if index.ntotal != len(manifest.ids) or index.d != manifest.dim:
            raise CacheMismatchError(f"{self.root / INDEX_FILE}: holds {index.ntotal} vectors of dim {index.d}, "
                                     f"but the manifest lists {len(manifest.ids)} ids of dim {manifest.dim}")
        self._position = {image_id: i for i, image_id in enumerate(manifest.ids)}
        self._category_positions: dict[str, np.ndarray] = {}
        for category in manifest.categories():
            self._category_positions[category] = np.asarray(
                [i for i, cats in enumerate(manifest.id_categories) if category in cats], dtype=np.int64)
        self._selectors = {category: _selector(positions) for category, positions in self._category_positions.items()
                           if len(positions) < len(manifest.ids)}

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, root: str | Path) -> GalleryIndex:
        """Open the index folder ``root``; refuse one that is incomplete, unreadable or inconsistent."""
        import faiss

        root = Path(root)
        manifest_path, index_path = root / MANIFEST_FILE, root / INDEX_FILE
        if not root.is_dir():
            raise CacheMismatchError(f"{root}: index folder not found")
        if not manifest_path.exists():
            raise CacheMismatchError(f"{root}: no {MANIFEST_FILE}; the index is incomplete — run `cirlab index` again")
        if not index_path.exists():
            raise CacheMismatchError(f"{index_path}: missing from the index folder")
        manifest = IndexManifest.from_dict(_read_json(manifest_path), manifest_path)
        verify_file(index_path, manifest.files.get(INDEX_FILE), recorded_in=manifest_path, advice=REBUILD)
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as exc:
            problem = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise CacheMismatchError(f"{index_path}: unreadable faiss index ({problem})") from None
        if manifest.kind == "ivf" and manifest.nprobe:
            index.nprobe = int(manifest.nprobe)
        return cls(root, index, manifest)

    # ------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        """Feature dimension."""
        return self.manifest.dim

    @property
    def ids(self) -> list[str]:
        """Gallery ids in index order."""
        return self.manifest.ids

    def __len__(self) -> int:
        return len(self.manifest.ids)

    def categories(self) -> list[str]:
        """Categories of the gallery."""
        return list(self._category_positions)

    def position_of(self, image_id: str) -> int | None:
        """Row of ``image_id`` in the index, or ``None`` when it is not in the gallery."""
        return self._position.get(image_id)

    def categories_of(self, position: int) -> list[str]:
        """Categories of the gallery item at ``position``."""
        return self.manifest.id_categories[position]

    def category_positions(self, category: str | None) -> np.ndarray:
        """Index rows of ``category`` in index order (every row when ``category`` is ``None``)."""
        if category is None:
            return np.arange(len(self), dtype=np.int64)
        self.check_category(category)
        return self._category_positions[category]

    def check_category(self, category: str) -> None:
        """Raise :class:`QueryError` unless ``category`` is one of the gallery's."""
        if category not in self._category_positions:
            raise QueryError("category", f"unknown category {category!r}; the gallery has "
                                         f"{', '.join(self.categories())}")

    # ------------------------------------------------------------ compatibility
    def check_features(self, cache: FeatureCache) -> None:
        """Raise :class:`CacheMismatchError` unless ``cache`` is the feature cache the index was built from.

        The identity recorded at build time is compared (:func:`~cirlab.features.identity.check_identity`),
        not the path, so a moved cache still serves its index.
        """
        check_identity(self.manifest.features, cache, what=self.root / MANIFEST_FILE,
                       hint="rebuild the index with `cirlab index`")

    # ----------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int, category: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows for each of ``queries`` ``[Q, dim]`` (L2-normalised float32), best first.

        Returns ``(scores [Q, k], positions [Q, k])``; when fewer than ``k`` items qualify the tail
        holds position -1. ``category`` restricts the search to that category's items (a faiss
        ID selector, so the top ``k`` are the category's best, not a filtered global top ``k``).
        A score outside [-1, 1] can only come from a damaged index: it raises
        :class:`~cirlab.hashing.DamagedFileError` naming the index file.
        """
        import faiss

        if k < 1:
            raise QueryError("k", f"must be at least 1, got {k}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must have shape [Q, {self.dim}], got {queries.shape}")
        if len(queries) and not float(np.linalg.norm(queries, axis=1).max()) <= 1 + UNIT_TOLERANCE:
            raise ValueError("queries must be L2-normalised (scores are cosine similarities)")
        selector = None
        if category is not None:
            self.check_category(category)
            selector = self._selectors.get(category)
        if self.manifest.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=int(self.manifest.nprobe or 1))
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        scores, positions = self.index.search(queries, k, params=params)
        self._check_scores(scores, positions)
        return scores, positions

    def _check_scores(self, scores: np.ndarray, positions: np.ndarray) -> None:
        """Refuse scores no cosine similarity can have (the stored vectors are damaged)."""
        found = scores[positions >= 0]
        bad = found[~(np.abs(found) <= 1 + 3 * UNIT_TOLERANCE)]  # NaN fails the test too
        if len(bad):
            raise DamagedFileError(f"{self.root / INDEX_FILE}: returned the score {float(bad[0]):.6g}, which no "
                                   f"cosine similarity can have: the index is damaged; {REBUILD}")


def write_index(root: str | Path, index: Any, manifest: IndexManifest) -> Path:
    """Write ``index`` and ``manifest`` into the folder ``root`` atomically, the manifest last, recording
    the size and sha256 of the index file in the manifest.

    The old manifest is removed first, so an interrupted rebuild leaves a folder that
    :meth:`GalleryIndex.load` refuses rather than a new index described by an old manifest.
    """
    import faiss

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST_FILE).unlink(missing_ok=True)
    with atomic_path(root / INDEX_FILE) as tmp:
        faiss.write_index(index, str(tmp))
        record = file_record(tmp)
    atomic_write_json(root / MANIFEST_FILE, replace(manifest, files={INDEX_FILE: record}).to_dict())
    return root


def _selector(positions: np.ndarray) -> Any:
    """A faiss selector admitting exactly ``positions`` (a contiguous run becomes a cheap range test)."""
    import faiss

    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return faiss.IDSelectorRange(int(positions[0]), int(positions[-1]) + 1)
    return faiss.IDSelectorBatch(positions)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CacheMismatchError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
