"""Per-query target ranks of a run's evaluations, kept in one compact file so every statistic can be recomputed.

A run folder's ``ranks.npz`` holds, for each evaluation (named ``<split>/<tag>``: ``val/epoch-0003`` for the
validation after epoch 3, ``test/best`` for the selected checkpoint on test), per category, the 0-based
target rank of every ranked query, in caption-file order (``file_indices``), and the gallery size. The
queries of a category and split are the same for every run on one feature cache, so two runs' arrays pair
query by query: a comparison resamples them together (:mod:`cirlab.compare.statistics`).

Arrays are stored as ``<evaluation>/<category>/ranks`` (int32), ``.../file_indices`` (int32) and
``.../gallery`` (a scalar), with ``.../subset_ranks`` (int32) for a protocol that ranks within subsets (CIRR),
and ``.../subset_sizes`` (the candidates of each query's subset), compressed, and the file is replaced atomically.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cirlab.errors import CacheMismatchError
from cirlab.evaluation.results import EvaluationResult
from cirlab.io import atomic_write_bytes

RANKS_FILE = "ranks.npz"


@dataclass(frozen=True)
class CategoryRanks:
    """One category's ranks in one evaluation."""

    ranks: np.ndarray  # [Q] 0-based target ranks
    file_indices: np.ndarray  # [Q] position of each query in its caption file
    gallery_size: int
    subset_ranks: np.ndarray | None = None  # [Q] 0-based ranks within each query's subset (CIRR)
    subset_sizes: np.ndarray | None = None  # [Q] candidates in each query's subset (its reference excluded)


#: An evaluation's ranks by category.
EvaluationRanks = dict[str, CategoryRanks]


def evaluation_name(split: str, tag: str | int) -> str:
    """``val/epoch-0003`` for an epoch number, ``<split>/<tag>`` for a named checkpoint."""
    return f"{split}/epoch-{tag:04d}" if isinstance(tag, int) else f"{split}/{tag}"


def ranks_of(result: EvaluationResult) -> EvaluationRanks:
    """The per-query ranks of an evaluation result."""
    return {category: CategoryRanks(ranks=_int32(r.ranks), file_indices=np.asarray(r.file_indices, dtype=np.int32),
                                    gallery_size=int(r.gallery_size),
                                    subset_ranks=None if r.subset_ranks is None else _int32(r.subset_ranks),
                                    subset_sizes=None if r.subset_sizes is None else _int32(r.subset_sizes))
            for category, r in result.per_category.items()}


def _int32(ranks: np.ndarray) -> np.ndarray:
    """Ranks as int32, the rank of a target outside the gallery (int64's maximum) saturated to int32's."""
    return np.minimum(np.asarray(ranks, dtype=np.int64), np.iinfo(np.int32).max).astype(np.int32)


def write_ranks(path: str | Path, evaluations: Mapping[str, EvaluationRanks]) -> None:
    """Write every evaluation's ranks to ``path`` (atomically, replacing the file)."""
    arrays: dict[str, np.ndarray] = {}
    for name, categories in evaluations.items():
        for category, entry in categories.items():
            arrays[f"{name}/{category}/ranks"] = entry.ranks
            arrays[f"{name}/{category}/file_indices"] = entry.file_indices
            arrays[f"{name}/{category}/gallery"] = np.asarray(entry.gallery_size, dtype=np.int64)
            for part in ("subset_ranks", "subset_sizes"):
                if getattr(entry, part) is not None:
                    arrays[f"{name}/{category}/{part}"] = getattr(entry, part)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def read_ranks(path: str | Path) -> dict[str, EvaluationRanks]:
    """Every evaluation in a ranks file, by name (``val/epoch-0003``, ``test/best``...), in the order written."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise CacheMismatchError(f"{path}: unreadable ranks file ({error})") from None
    evaluations: dict[str, EvaluationRanks] = {}
    for key in arrays:
        if not key.endswith("/ranks"):
            continue
        name, category = key[: -len("/ranks")].rsplit("/", 1)
        prefix = f"{name}/{category}"
        try:
            entry = CategoryRanks(ranks=arrays[key], file_indices=arrays[f"{prefix}/file_indices"],
                                  gallery_size=int(arrays[f"{prefix}/gallery"]),
                                  subset_ranks=arrays.get(f"{prefix}/subset_ranks"),
                                  subset_sizes=arrays.get(f"{prefix}/subset_sizes"))
        except KeyError as missing:
            raise CacheMismatchError(f"{path}: ranks of {prefix} without their {missing.args[0].rsplit('/', 1)[1]}") \
                from None
        evaluations.setdefault(name, {})[category] = entry
    return evaluations
