"""Building a gallery index from a feature cache (the library form of ``cirlab index``).

The gallery is the images of one split (``val`` by default) of the chosen categories. Features are
L2-normalised, so inner-product search ranks by cosine similarity, as the evaluation protocol does.
``flat`` is exact; ``ivf`` (faiss IndexIVFFlat) visits ``nprobe`` of ``nlist`` inverted lists per query
and is for galleries large enough that exact search is too slow. An IVF index's recall@10 against
the exact index is measured when it is built and recorded in its manifest. The index folder has one
writer at a time: the build holds its lock (:mod:`cirlab.locking`) and deletes the temporaries that a
killed build left there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.features.cache import FeatureCache
from cirlab.locking import lock_folder, remove_leftover_temporaries
from cirlab.progress import progress
from cirlab.search.components import encoder_spec_from_manifest
from cirlab.search.index import INDEX_KINDS, IndexManifest, write_index

#: Rows normalised and added per step (bounds the memory beyond the index itself).
ADD_CHUNK = 65_536
#: faiss k-means wants at least this many training points per inverted list.
MIN_POINTS_PER_LIST = 39
#: k of the recall measured for IVF indexes.
RECALL_K = 10


@dataclass(frozen=True)
class IndexReport:
    """What :func:`build_index` wrote."""

    out: Path
    kind: str
    size: int
    dim: int
    split: str
    categories: list[str]
    shared_ids: int  # ids that belong to more than one category (stored once)
    nlist: int | None
    nprobe: int | None
    recall_at_10: float | None  # IVF: mean share of the exact top 10 that the IVF top 10 finds
    recall_queries: int

    def format(self) -> str:
        """A short human-readable summary."""
        lines = [f"index: {self.out} ({self.kind}, {self.size} images of dim {self.dim}, "
                 f"split {self.split}, categories {', '.join(self.categories)})"]
        if self.shared_ids:
            lines.append(f"  {self.shared_ids} images belong to several categories (indexed once)")
        if self.kind == "ivf":
            lines.append(f"  nlist {self.nlist}, nprobe {self.nprobe}: recall@{RECALL_K} vs exact "
                         f"{self.recall_at_10:.4f} over {self.recall_queries} queries")
        return "\n".join(lines)


def build_index(features: str | Path, out: str | Path, *, categories: list[str] | None = None, split: str = "val",
                kind: str = "flat", nlist: int | None = None, nprobe: int | None = None,
                recall_queries: int = 1000, seed: int = 0, show_progress: bool = True) -> IndexReport:
    """Index the ``split`` images of ``categories`` (default: every cached category having the split).

    ``nlist`` defaults to about 4·√N (at most N / 39, faiss's k-means minimum per list), ``nprobe``
    to max(8, nlist / 16). For ``ivf``, ``recall_queries`` gallery images (drawn with ``seed``) are
    searched in both the IVF and an exact index, each query's own image left out of both lists,
    and the mean overlap of the two top-10 lists is reported. Another process writing ``out`` at the
    same time is refused (:class:`~cirlab.locking.FolderLockedError`).
    """
    if kind not in INDEX_KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; use one of {', '.join(INDEX_KINDS)}")
    cache = FeatureCache.open(features)
    chosen = _choose_categories(cache, categories, split)
    rows, id_categories = _gallery_rows(cache, chosen, split)
    if not rows:
        raise CacheMismatchError(f"{cache.root}: the {split} split of {', '.join(chosen)} holds no images")
    with lock_folder(out):
        remove_leftover_temporaries(out)
        return _build(cache, Path(out), chosen, rows, id_categories, split=split, kind=kind, nlist=nlist,
                      nprobe=nprobe, recall_queries=recall_queries, seed=seed, show_progress=show_progress)


def _build(cache: FeatureCache, out: Path, chosen: list[str], rows: list[int], id_categories: list[list[str]], *,
           split: str, kind: str, nlist: int | None, nprobe: int | None, recall_queries: int, seed: int,
           show_progress: bool) -> IndexReport:
    """Index ``rows`` of ``cache`` into ``out`` (under its lock)."""
    import faiss

    ids = [cache.image_ids[row] for row in rows]
    dim = cache.dim
    vectors = _normalised(cache, np.asarray(rows, dtype=np.int64), show_progress)

    recall, measured = None, 0
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
    else:
        nlist, nprobe = _ivf_sizes(len(rows), nlist, nprobe)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.max_points_per_centroid = 256  # faiss's default; larger galleries are subsampled for training
        index.train(vectors)
        index.add(vectors)
        index.nprobe = nprobe
        recall, measured = ivf_recall(index, vectors, nprobe, recall_queries, seed)

    manifest = IndexManifest(
        kind=kind, dim=dim, ids=ids, id_categories=id_categories, split=split,
        features={"path": str(cache.root.resolve()), **cache.identity()},
        encoder=encoder_spec_from_manifest(cache.manifest, cache.root).to_dict(),
        data_root=cache.manifest.get("data_root"),
        nlist=nlist if kind == "ivf" else None, nprobe=nprobe if kind == "ivf" else None,
        ivf_recall_at_10=recall, recall_queries=measured)
    write_index(out, index, manifest)
    return IndexReport(out=out, kind=kind, size=len(ids), dim=dim, split=split, categories=chosen,
                       shared_ids=sum(len(c) > 1 for c in id_categories), nlist=manifest.nlist,
                       nprobe=manifest.nprobe, recall_at_10=recall, recall_queries=measured)


def ivf_recall(index: Any, vectors: np.ndarray, nprobe: int, num_queries: int, seed: int = 0) -> tuple[float, int]:
    """Mean overlap of ``index``'s top 10 with the exact top 10, over a seeded sample of ``vectors``.

    Each query is a gallery vector whose own row is dropped from both result lists (otherwise every
    query trivially finds itself). Returns ``(recall, number of queries)``.
    """
    import faiss

    if num_queries < 1 or len(vectors) < 2:
        return float("nan"), 0
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(vectors), size=min(num_queries, len(vectors)), replace=False))
    queries = vectors[sample]
    k = min(RECALL_K, len(vectors) - 1)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k + 1)
    _, found = index.search(queries, k + 1, params=faiss.SearchParametersIVF(nprobe=nprobe))
    overlaps = []
    for own, true_row, found_row in zip(sample, truth, found):
        true_set = [p for p in true_row if p != own and p >= 0][:k]
        found_set = {p for p in found_row if p != own and p >= 0}
        overlaps.append(len(found_set.intersection(true_set)) / len(true_set))
    return float(np.mean(overlaps)), len(sample)


def _choose_categories(cache: FeatureCache, categories: list[str] | None, split: str) -> list[str]:
    having = [c for c in cache.categories() if cache.has_split(c, split)]
    if categories is None:
        if not having:
            raise CacheMismatchError(f"{cache.root}: no category of the feature cache has a {split!r} split "
                                     f"(cached: {', '.join(cache.categories()) or 'none'})")
        return having
    missing = [c for c in categories if c not in having]
    if missing:
        raise ConfigError(f"{cache.root}: the feature cache has no {split!r} images of {', '.join(missing)}; "
                          f"it has {', '.join(having) or 'none'}")
    return list(dict.fromkeys(categories))


def _gallery_rows(cache: FeatureCache, categories: list[str], split: str) -> tuple[list[int], list[list[str]]]:
    """Distinct cache rows of the gallery in category order, with every category each row belongs to."""
    rows: list[int] = []
    categories_of: dict[int, list[str]] = {}
    for category in categories:
        for row in cache.split_rows(category, split).tolist():
            if row not in categories_of:
                categories_of[row] = []
                rows.append(row)
            if category not in categories_of[row]:
                categories_of[row].append(category)
    return rows, [categories_of[row] for row in rows]


def _normalised(cache: FeatureCache, rows: np.ndarray, show_progress: bool) -> np.ndarray:
    """L2-normalised float32 features of ``rows``; a zero or non-finite feature is an error naming the image."""
    out = np.empty((len(rows), cache.dim), dtype=np.float32)
    with progress(desc="index", total=len(rows), unit="img", enabled=show_progress) as bar:
        for start in range(0, len(rows), ADD_CHUNK):
            chunk = np.asarray(cache.image_features[rows[start:start + ADD_CHUNK]], dtype=np.float32)
            norms = np.linalg.norm(chunk, axis=1)
            bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
            if len(bad):
                image_id = cache.image_ids[int(rows[start + bad[0]])]
                raise CacheMismatchError(f"{cache.root}: image {image_id!r} has a zero or non-finite feature "
                                         f"({len(bad)} such in this chunk); extract the cache again")
            out[start:start + len(chunk)] = chunk / norms[:, None]
            bar.update(len(chunk))
    return out


def _ivf_sizes(size: int, nlist: int | None, nprobe: int | None) -> tuple[int, int]:
    largest = max(1, size // MIN_POINTS_PER_LIST)
    if nlist is None:
        nlist = max(1, min(int(4 * math.sqrt(size)), largest))
    elif not 1 <= nlist <= size:
        raise ConfigError(f"--nlist must lie in [1, {size}] (the gallery size), got {nlist}")
    if nprobe is None:
        nprobe = min(nlist, max(8, nlist // 16))
    elif not 1 <= nprobe <= nlist:
        raise ConfigError(f"--nprobe must lie in [1, nlist={nlist}], got {nprobe}")
    return nlist, nprobe
