"""The FashionIQ validation protocol on cached features, as the field reports it (CLIP4Cir and later work).

Per category:

- **gallery** = every image of ``split.<category>.<split>.json`` that the cache holds, in split-file order;
- **queries** = every triplet of ``cap.<category>.<split>.json`` that the cache holds (empty captions included),
  each encoded as the combiner's output for (reference image features, text features of the form
  "C1 and c2"), from the cache's raw (unnormalised) features, as CLIP4Cir feeds its combiner;
- **ranking** by cosine similarity of the L2-normalised query to the L2-normalised gallery features;
- **Recall@1, 5, 10, 50** in percent; then their unweighted mean over categories, and the headline
  "average" = mean of (mean Recall@10, mean Recall@50).

The reference image is **not** removed from the gallery: CLIP4Cir keeps it for FashionIQ (it removes it
only for CIRR), and published FashionIQ numbers follow that. Ties are broken by gallery order
(:mod:`cirlab.evaluation.recall`).

Queries that cannot be ranked are never dropped silently:

- a triplet left out of the cache by the missing-image policy ``skip`` is absent from the denominator and
  counted (reason ``missing_image``, from the manifest's ``missing`` report);
- a triplet without a target (the test split) is absent from the denominator and counted
  (``target_withheld``);
- a triplet whose target is not in the gallery is **kept** and counts as a miss at every K (the field's code
  would find no match for it); one whose reference is not in the gallery is kept and ranked normally (its
  features come from the cache). Both are counted (``outside_gallery``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.data.missing import MissingReport
from cirlab.errors import CacheMismatchError, CirlabError, ConfigError
from cirlab.evaluation.recall import DEFAULT_KS, recall_from_ranks, target_ranks
from cirlab.evaluation.results import (
    EXCLUDED_MISSING_IMAGE,
    EXCLUDED_TARGET_WITHHELD,
    OUTSIDE_REFERENCE,
    OUTSIDE_TARGET,
    CategoryResult,
    EvaluationResult,
)
from cirlab.features.cache import FeatureCache
from cirlab.progress import progress

#: ``combine(image_features [B, d], text_features [B, d]) -> query embeddings [B, d]``.
Combine = Callable[[Tensor, Tensor], Tensor]

#: Key of the missing-image report (:meth:`MissingReport.to_dict`) in a cache manifest.
MANIFEST_MISSING_KEY = "missing"

#: The split a combiner is trained on.
TRAIN_SPLIT = "train"


class NonFiniteQueriesError(CirlabError):
    """The combiner returned NaN or infinite query embeddings (for example after training diverged)."""


@dataclass(frozen=True)
class CategoryQueries:
    """One category's gallery and queries, resolved against a feature cache (row numbers, no features)."""

    category: str
    gallery_rows: np.ndarray  # [N] image rows of the gallery, in split-file order
    positions: np.ndarray  # [Q] triplet positions in the cache (rows of texts.npy) of the ranked queries
    reference_rows: np.ndarray  # [Q] image rows of the references
    target_indices: np.ndarray  # [Q] position of each target in the gallery, -1 when outside it
    file_indices: np.ndarray  # [Q] position of each query in its caption file
    excluded: dict[str, list[int]]  # reason -> caption-file indices of queries left out
    outside_gallery: dict[str, list[int]]  # "target"/"reference" -> caption-file indices (kept)
    missing_images: int  # images of this category/split that the cache lacks


def category_queries(cache: FeatureCache, category: str, split: str = "val") -> CategoryQueries:
    """Resolve the protocol's gallery and queries of ``category``/``split`` in ``cache``."""
    gallery_rows = cache.split_rows(category, split)
    table = cache.triplets
    positions = table.select([category], split)
    targets, references = table.target_rows[positions], table.reference_rows[positions]
    file_indices = table.file_index[positions]

    withheld = targets < 0
    gallery_position = np.full(len(cache.image_ids), -1, dtype=np.int64)
    gallery_position[gallery_rows[::-1]] = np.arange(len(gallery_rows) - 1, -1, -1)  # first occurrence wins
    in_gallery = np.zeros(len(cache.image_ids), dtype=bool)
    in_gallery[gallery_rows] = True
    target_indices = np.where(withheld, -1, gallery_position[np.maximum(targets, 0)])
    target_outside = ~withheld & (target_indices < 0)
    reference_outside = ~withheld & ~in_gallery[references]

    report = _missing_report(cache)
    key = f"{category}.{split}"
    kept = ~withheld
    return CategoryQueries(
        category=category,
        gallery_rows=gallery_rows,
        positions=positions[kept],
        reference_rows=references[kept],
        target_indices=target_indices[kept],
        file_indices=file_indices[kept],
        excluded={
            EXCLUDED_MISSING_IMAGE: sorted(int(i) for i in report.dropped_triplets.get(key, [])),
            EXCLUDED_TARGET_WITHHELD: [int(i) for i in file_indices[withheld]],
        },
        outside_gallery={
            OUTSIDE_TARGET: [int(i) for i in file_indices[target_outside]],
            OUTSIDE_REFERENCE: [int(i) for i in file_indices[reference_outside]],
        },
        missing_images=len(report.missing_images.get(key, [])),
    )


class FashionIQValidation:
    """The protocol's inputs for one cache, prepared once and evaluated with any combiner.

    The gallery features are normalised and moved to ``device`` once, together with every query's
    reference-image and text features, so that a trainer can call :meth:`evaluate` every epoch at the
    cost of the combiner's forward pass and the ranking alone.
    """

    def __init__(self, cache: FeatureCache, categories: list[str] | None = None, split: str = "val",
                 device: torch.device | str = "cpu", batch_size: int = 1024) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        self.cache = cache
        self.split = split
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.categories = _resolve_categories(cache, categories, split)
        self.queries = {c: category_queries(cache, c, split) for c in self.categories}
        for c, q in self.queries.items():
            if len(q.positions) == 0:
                raise CacheMismatchError(f"{cache.root}: no rankable {c}/{split} queries in the feature cache "
                                         f"({_describe_excluded(q)})")
        self._gallery = {c: self._load_gallery(q) for c, q in self.queries.items()}
        self._inputs = {c: self._load_inputs(q) for c, q in self.queries.items()}

    def _load_gallery(self, queries: CategoryQueries) -> Tensor:
        features = torch.from_numpy(np.asarray(self.cache.image_features[queries.gallery_rows]))
        features = F.normalize(features.to(self.device, torch.float32), dim=-1)
        if not bool(torch.isfinite(features).all()):
            raise CacheMismatchError(f"{self.cache.root}: non-finite image features in the {queries.category}/"
                                     f"{self.split} gallery; extract the cache again")
        return features

    def _load_inputs(self, queries: CategoryQueries) -> tuple[Tensor, Tensor, Tensor]:
        images = np.asarray(self.cache.image_features[queries.reference_rows])
        texts = self.cache.eval_text_features(queries.positions)
        targets = torch.from_numpy(queries.target_indices)
        return (torch.from_numpy(images).to(self.device, torch.float32),
                torch.from_numpy(texts).to(self.device, torch.float32), targets.to(self.device))

    def gallery(self, category: str) -> Tensor:
        """``[N, d]`` L2-normalised gallery features of ``category``, in split-file order, on :attr:`device`."""
        return self._gallery[category]

    def query_inputs(self, category: str) -> tuple[Tensor, Tensor, Tensor]:
        """Raw reference-image features ``[Q, d]``, text features ``[Q, d]`` and target positions ``[Q]``."""
        return self._inputs[category]

    @property
    def num_queries(self) -> int:
        """Queries ranked over every category."""
        return sum(len(q.positions) for q in self.queries.values())

    def evaluate(self, combine: Combine, metadata: dict | None = None, show_progress: bool = True) -> EvaluationResult:
        """Rank every query with ``combine`` and return the per-category Recall@K.

        ``combine`` receives raw reference-image and text features on :attr:`device` (float32) and may be
        any callable; an ``nn.Module`` is put in eval mode for the call and restored after. Gradients are
        off. Its outputs are cast to float32 and L2-normalised here.
        """
        results = {}
        with torch.no_grad(), _eval_mode(combine), progress(desc=f"eval {self.split}", total=self.num_queries,
                                                             unit="query", enabled=show_progress) as bar:
            for category in self.categories:
                ranks = self._rank(category, combine, bar)
                q = self.queries[category]
                results[category] = CategoryResult(
                    category=category, recall=recall_from_ranks(ranks, DEFAULT_KS), num_queries=len(ranks),
                    gallery_size=len(q.gallery_rows), ranks=ranks.cpu().numpy(), file_indices=q.file_indices,
                    excluded=q.excluded, outside_gallery=q.outside_gallery, missing_images=q.missing_images)
        return EvaluationResult(split=self.split, per_category=results, ks=DEFAULT_KS, metadata=dict(metadata or {}))

    def _rank(self, category: str, combine: Combine, bar) -> Tensor:
        images, texts, targets = self.query_inputs(category)
        gallery = self.gallery(category)
        ranks = []
        for start in range(0, len(targets), self.batch_size):
            stop = start + self.batch_size
            queries = F.normalize(combine(images[start:stop], texts[start:stop]).float(), dim=-1)
            if not bool(torch.isfinite(queries).all()):
                raise NonFiniteQueriesError(f"{self.cache.root}: the combiner returned non-finite query embeddings "
                                            f"for {category}/{self.split} (did training diverge?)")
            ranks.append(target_ranks(queries, gallery, targets[start:stop], chunk_size=self.batch_size,
                                      check_finite=False))  # both checked already
            bar.update(len(queries))
        return torch.cat(ranks)


def evaluate_fashioniq(cache: FeatureCache, combine: Combine, categories: list[str] | None = None, split: str = "val",
                       batch_size: int = 1024, device: torch.device | str = "cpu",
                       metadata: dict | None = None, show_progress: bool = True) -> EvaluationResult:
    """Evaluate ``combine`` on the FashionIQ protocol of ``cache`` (every category of ``split`` by default)."""
    validation = FashionIQValidation(cache, categories=categories, split=split, device=device, batch_size=batch_size)
    return validation.evaluate(combine, metadata=metadata, show_progress=show_progress)


def evaluated_categories(cache: FeatureCache, val_categories: Sequence[str] | None,
                         trained: Sequence[str] | None, split: str = "val") -> list[str]:
    """The categories a training run is validated on, by one rule for the trainer and ``compare``.

    ``val_categories`` when given; else the trained categories when they were chosen (``trained``,
    each once); else every cached category that has both a train and a ``split`` split (a category
    without validation images cannot be validated, so it is left out rather than refused).
    """
    if val_categories:
        return list(val_categories)
    if trained:
        return list(dict.fromkeys(trained))
    return [c for c in cache.categories() if cache.has_split(c, TRAIN_SPLIT) and cache.has_split(c, split)]


def _resolve_categories(cache: FeatureCache, categories: list[str] | None, split: str) -> list[str]:
    if categories is None:
        categories = [c for c in cache.categories() if cache.has_split(c, split)]
        if not categories:
            raise CacheMismatchError(f"{cache.root}: the feature cache holds no {split!r} split of any category")
        return categories
    if not categories:
        raise ConfigError("no categories given")
    duplicates = sorted({c for c in categories if categories.count(c) > 1})
    if duplicates:
        raise ConfigError(f"categories listed twice: {', '.join(duplicates)}")
    for category in categories:
        cache.split_rows(category, split)  # raises CacheMismatchError naming what the cache holds
    return list(categories)


def _missing_report(cache: FeatureCache) -> MissingReport:
    data = cache.manifest.get(MANIFEST_MISSING_KEY)
    if data is None:
        return MissingReport()
    if not isinstance(data, dict):
        raise CacheMismatchError(f"{cache.root}: manifest key {MANIFEST_MISSING_KEY!r} is not a missing-image report")
    return MissingReport.from_dict(data)


def _describe_excluded(queries: CategoryQueries) -> str:
    counts = [f"{len(v)} {reason.replace('_', ' ')}" for reason, v in queries.excluded.items() if v]
    return "left out: " + ", ".join(counts) if counts else "the caption file has no triplets"


@contextlib.contextmanager
def _eval_mode(combine: Combine) -> Iterator[None]:
    """Put an ``nn.Module`` combiner in eval mode for the block, then restore its mode."""
    if not isinstance(combine, torch.nn.Module):
        yield
        return
    was_training = combine.training
    combine.eval()
    try:
        yield
    finally:
        combine.train(was_training)
