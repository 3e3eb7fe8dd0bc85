"""CIRR test-server submissions: the two prediction files the data set's evaluation server scores, and their check.

CIRR's test split (``test1``) withholds its targets; its results come from the evaluation server, which takes
one JSON object per metric::

    {"version": "rc2", "metric": "recall",        "<pairid>": [top 50 image names], ...}
    {"version": "rc2", "metric": "recall_subset", "<pairid>": [top 3 image names of the subset], ...}

Both rank like the validation protocol (:mod:`cirlab.evaluation.cirr`): the reference is removed from its
query's ranking, the subset ranking is the global ranking restricted to the query's ``img_set`` members other
than the reference, and ties are broken by gallery order. :func:`check_submission` checks a file against the
annotation before it is uploaded: every pair present and no other, the version and metric, list lengths, names
of the split's images (of the query's subset for ``recall_subset``), no duplicate, no reference, and the
server's 5 MB limit; it names the first problem in one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cirlab.errors import CirlabError
from cirlab.evaluation.cirr import masked_scores, subset_order
from cirlab.evaluation.protocol import PROTOCOLS, Combine, Protocol, eval_mode
from cirlab.features.cache import FeatureCache
from cirlab.io import atomic_write_bytes
from cirlab.progress import progress

VERSION = "rc2"
#: Metric name -> (file name, names per pair) as the evaluation server expects them.
METRICS: dict[str, tuple[str, int]] = {"recall": ("recall_submission.json", 50),
                                       "recall_subset": ("recall_subset_submission.json", 3)}
#: The evaluation server's upload limit.
MAX_BYTES = 5 * 1024 * 1024


class SubmissionError(CirlabError):
    """A submission file the evaluation server would reject or score wrongly."""


@dataclass(frozen=True)
class PairSpec:
    """What the annotation says of one test pair: its reference and its subset (``img_set`` members)."""

    reference: str
    subset: tuple[str, ...]


@dataclass
class SubmissionResult:
    """Predictions for every pair of a split, per metric: ``predictions[metric][pairid] = [image names]``."""

    split: str
    predictions: dict[str, dict[str, list[str]]]
    metadata: dict[str, Any]

    @property
    def num_pairs(self) -> int:
        """Pairs predicted."""
        return len(self.predictions["recall"])

    def documents(self) -> dict[str, dict[str, Any]]:
        """The JSON object of each metric's file, as the server reads it."""
        return {metric: {"version": VERSION, "metric": metric, **pairs} for metric, pairs in self.predictions.items()}

    def write(self, folder: str | Path) -> list[Path]:
        """Write both files into ``folder`` (atomically) and return their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for metric, document in self.documents().items():
            path = folder / METRICS[metric][0]
            atomic_write_bytes(path, _encode(document))
            paths.append(path)
        return paths

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the predictions themselves are in the files)."""
        return {"protocol": "cirr-submission", "split": self.split, "pairs": self.num_pairs, **self.metadata}

    def format_table(self) -> str:
        """Lines for the terminal."""
        return (f"CIRR {self.split} submission: {self.num_pairs} pairs, top {METRICS['recall'][1]} for recall and "
                f"top {METRICS['recall_subset'][1]} of the subset for recall_subset (reference removed)")


@PROTOCOLS.register("cirr-submission")
class CirrSubmission(Protocol):
    """CIRR test server: top-50 names and top-3 subset names per pair, reference removed, for upload."""

    title = "CIRR"
    keep_withheld = True
    datasets = ("cirr",)

    def evaluate(self, combine: Combine, metadata: dict | None = None,  # type: ignore[override]
                 show_progress: bool = True) -> SubmissionResult:
        """Rank every pair with ``combine`` and return both metrics' predictions."""
        recall: dict[str, list[str]] = {}
        subset: dict[str, list[str]] = {}
        with torch.no_grad(), eval_mode(combine), progress(desc=f"rank {self.split}", total=self.num_queries,
                                                            unit="query", enabled=show_progress) as bar:
            for category, q in self.queries.items():
                names = np.asarray([self.cache.image_ids[row] for row in q.gallery_rows.tolist()], dtype=object)
                pair_ids = q.query_ids(self.cache)
                subsets = q.subset_indices(self.cache)
                references = torch.from_numpy(q.reference_indices).to(self.device)
                top = min(METRICS["recall"][1], len(names) - 1)
                for start in range(0, len(pair_ids), self.batch_size):
                    stop = min(start + self.batch_size, len(pair_ids))
                    queries = self.query_embeddings(category, combine, start, stop)
                    scores = masked_scores(queries, self.gallery(category), references[start:stop])
                    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :top].cpu().numpy()
                    block = scores.cpu().numpy()
                    for i, pair in enumerate(pair_ids[start:stop]):
                        recall[pair] = names[order[i]].tolist()
                        ranked = subset_order(block[i], subsets[start + i])
                        subset[pair] = names[ranked[: METRICS["recall_subset"][1]]].tolist()
                    bar.update(stop - start)
        return SubmissionResult(self.split, {"recall": recall, "recall_subset": subset}, dict(metadata or {}))


def pair_specs(cache: FeatureCache, split: str) -> tuple[dict[str, PairSpec], set[str]]:
    """Every pair of ``split`` in the cache with its reference and subset, and the names of the split's images."""
    table = cache.triplets
    ids = cache.image_ids
    pairs = {}
    for position in np.flatnonzero(table.splits == split).tolist():
        pair = str(table.query_ids[position]) or str(int(table.file_index[position]))
        pairs[pair] = PairSpec(ids[int(table.reference_rows[position])],
                               tuple(ids[row] for row in table.subset_rows[position]))
    images = {ids[row] for category in cache.categories() if cache.has_split(category, split)
              for row in cache.split_rows(category, split).tolist()}
    return pairs, images


def dataset_pair_specs(dataset: Any, split: str) -> tuple[dict[str, PairSpec], set[str]]:
    """Every pair of ``split`` in a data set reader (:func:`cirlab.data.dataset.open_dataset`) with its reference and
    subset, and the names of the split's images: what :func:`check_submission` checks against, read from the
    annotation files themselves (no cache or images needed)."""
    pairs, images = {}, set()
    for category in dataset.categories:
        images.update(dataset.image_ids(category, split))
        for triplet in dataset.triplets(category, split):
            pair = triplet.query_id if triplet.query_id is not None else str(triplet.index)
            pairs[str(pair)] = PairSpec(triplet.reference, tuple(triplet.subset))
    return pairs, images


def check_submission(path: str | Path, pairs: Mapping[str, PairSpec], images: set[str],
                     metric: str | None = None) -> str:
    """Check a submission file against the annotation; return its metric, or raise :class:`SubmissionError`
    naming the file and the first problem.

    ``pairs`` maps every pair id of the split to its reference and subset; ``images`` holds the split's image
    names. ``metric`` is the metric the file must have (by default whichever it declares).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SubmissionError(f"{path}: unreadable ({error.strerror or error})") from None
    if len(data) > MAX_BYTES:
        raise SubmissionError(f"{path}: {len(data) / 2**20:.1f} MB, over the evaluation server's 5 MB limit")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SubmissionError(f"{path}: not JSON ({error})") from None
    if not isinstance(document, dict):
        raise SubmissionError(f"{path}: a submission is one JSON object, this file holds a {type(document).__name__}")
    if document.get("version") != VERSION:
        raise SubmissionError(f"{path}: \"version\" is {document.get('version')!r}, the server expects {VERSION!r}")
    declared = document.get("metric")
    if declared not in METRICS:
        raise SubmissionError(f"{path}: \"metric\" is {declared!r}; expected one of {', '.join(METRICS)}")
    if metric is not None and declared != metric:
        raise SubmissionError(f"{path}: \"metric\" is {declared!r}, expected {metric!r}")
    predictions = {key: value for key, value in document.items() if key not in ("version", "metric")}
    missing = [pair for pair in pairs if pair not in predictions]
    if missing:
        raise SubmissionError(f"{path}: {len(missing)} of {len(pairs)} pairs have no prediction, e.g. pair "
                              f"{missing[0]}")
    extra = [pair for pair in predictions if pair not in pairs]
    if extra:
        raise SubmissionError(f"{path}: pair {extra[0]!r} is not a pair of the split ({len(extra)} unknown pairs)")
    for pair, names in predictions.items():
        _check_pair(path, declared, pair, names, pairs[pair], images)
    return declared


def _check_pair(path: Path, metric: str, pair: str, names: Any, spec: PairSpec, images: set[str]) -> None:
    where = f"{path}: pair {pair}"
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise SubmissionError(f"{where}: predictions must be a list of image names")
    candidates: Sequence[str] | set[str] = images if metric == "recall" else spec.subset
    expected = min(METRICS[metric][1], len(set(candidates) - {spec.reference}))
    if len(names) != expected:
        raise SubmissionError(f"{where}: {len(names)} names, {metric} takes exactly {expected}")
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise SubmissionError(f"{where}: {duplicate!r} is listed twice")
    if spec.reference in names:
        raise SubmissionError(f"{where}: lists its own reference image {spec.reference!r}")
    unknown = [name for name in names if name not in candidates]
    if unknown:
        where_from = "the split's images" if metric == "recall" else "the pair's subset (img_set members)"
        raise SubmissionError(f"{where}: {unknown[0]!r} is not among {where_from}")


def _encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")
