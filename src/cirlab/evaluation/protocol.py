"""Evaluation protocols as plug-ins: each turns a feature cache and any combiner into a result with per-query ranks.

A protocol is chosen by name from :data:`PROTOCOLS` (``fashioniq``, ``cirr``, ``cirr-submission``), or from the
cache: :func:`default_protocol` picks the one of the cache's data set kind (its manifest's ``dataset``) and split.
Every protocol shares one preparation (:class:`Protocol`): per category, the gallery features are normalised and
moved to the device once, with every query's reference-image and evaluation-form text features, so that a
trainer can evaluate every epoch at the cost of the combiner's forward pass and the ranking alone. A protocol
decides what its gallery is, which queries it ranks, how it ranks them (:meth:`Protocol.rank`), its metrics
and its headline.

Queries are encoded from the cache's raw (unnormalised) features, as CLIP4Cir feeds its combiner, and ranked by
cosine similarity of the L2-normalised query to the L2-normalised gallery features; ties are broken by gallery
order (:mod:`cirlab.evaluation.recall`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.errors import CacheMismatchError, CirlabError, ConfigError
from cirlab.evaluation.queries import CategoryQueries, category_queries
from cirlab.evaluation.recall import DEFAULT_KS, recall_from_ranks
from cirlab.evaluation.results import CategoryResult, EvaluationResult
from cirlab.features.cache import FeatureCache
from cirlab.progress import progress
from cirlab.registry import Registry

#: ``combine(image_features [B, d], text_features [B, d]) -> query embeddings [B, d]``.
Combine = Callable[[Tensor, Tensor], Tensor]

#: Every evaluation protocol, by name; each is built as ``PROTOCOLS.build(name, cache, split=..., **options)``.
PROTOCOLS: Registry[type[Protocol]] = Registry("evaluation protocol", inputs=("cache",))

#: The protocol of each data set kind, by whether the split gives targets (ranked) or not (a submission).
_BY_DATASET: dict[str, tuple[str, str | None]] = {"fashioniq": ("fashioniq", None),
                                                  "cirr": ("cirr", "cirr-submission")}


class NonFiniteQueriesError(CirlabError):
    """The combiner returned NaN or infinite query embeddings (for example after training diverged)."""


class Protocol:
    """The inputs of one protocol on one cache, prepared once and evaluated with any combiner.

    Subclasses set the class attributes and may override :meth:`gallery_rows` (which images form a category's
    gallery) and :meth:`rank` (the ranks of a batch of queries); :meth:`evaluate` is shared.
    """

    #: The benchmark's name, for tables.
    title: ClassVar[str] = ""
    #: The K of Recall@K, and of Recall_subset@K where the protocol ranks within subsets.
    ks: ClassVar[tuple[int, ...]] = DEFAULT_KS
    subset_ks: ClassVar[tuple[int, ...]] = ()
    #: The headline is the mean of these metrics.
    headline_metrics: ClassVar[tuple[str, ...]] = ()
    #: Whether queries without a target are ranked too (a submission protocol ranks them without scoring them).
    keep_withheld: ClassVar[bool] = False
    registry_name: ClassVar[str]

    def __init__(self, cache: FeatureCache, split: str = "val", categories: list[str] | None = None,
                 device: torch.device | str = "cpu", batch_size: int = 1024) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {batch_size}")
        self.cache = cache
        self.split = split
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.categories = _resolve_categories(cache, categories, split)
        self.queries: dict[str, CategoryQueries] = {
            c: category_queries(cache, c, split, gallery_rows=self.gallery_rows(c), keep_withheld=self.keep_withheld)
            for c in self.categories}
        for c, q in self.queries.items():
            if len(q.positions) == 0:
                raise CacheMismatchError(f"{cache.root}: no rankable {c}/{split} queries in the feature cache "
                                         f"({_describe_excluded(q)})")
        self._gallery = {c: self._load_gallery(q) for c, q in self.queries.items()}
        self._inputs = {c: self._load_inputs(q) for c, q in self.queries.items()}

    # ------------------------------------------------------------------ what subclasses decide
    @property
    def gallery_name(self) -> str:
        """Which gallery this protocol ranks against, as results record it."""
        return "split"

    def gallery_rows(self, category: str) -> np.ndarray:
        """Image rows of ``category``'s gallery, in gallery order: by default every image of the split file."""
        return self.cache.split_rows(category, self.split)

    def rank(self, category: str, start: int, queries: Tensor) -> tuple[Tensor, Tensor | None]:
        """0-based target ranks of the normalised ``queries`` (the category's queries ``start`` onwards), and their
        ranks within their subsets (``None`` for a protocol without subsets)."""
        raise NotImplementedError

    def scores(self, category: str, start: int, queries: Tensor) -> Tensor:
        """``[B, N]`` ranking scores of the normalised ``queries`` (the category's queries ``start`` onwards) against
        the gallery, as the protocol ranks them (CIRR's exclude each query's reference)."""
        return queries @ self.gallery(category).T

    def description(self) -> str:
        """One line stating the protocol's rules, for the result's footer."""
        return ""

    def subset_sizes(self, category: str) -> np.ndarray | None:
        """``[Q]`` candidates in each query's subset (its reference excluded), for a protocol with subsets."""
        return None

    # ------------------------------------------------------------------ shared
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
        """``[N, d]`` L2-normalised gallery features of ``category``, in gallery order, on :attr:`device`."""
        return self._gallery[category]

    def query_inputs(self, category: str) -> tuple[Tensor, Tensor, Tensor]:
        """Raw reference-image features ``[Q, d]``, text features ``[Q, d]`` and target positions ``[Q]``."""
        return self._inputs[category]

    @property
    def num_queries(self) -> int:
        """Queries ranked over every category."""
        return sum(len(q.positions) for q in self.queries.values())

    def query_embeddings(self, category: str, combine: Combine, start: int, stop: int) -> Tensor:
        """The L2-normalised float32 query embeddings of ``category``'s queries ``start:stop``; a non-finite
        output is refused (it would rank as a hit)."""
        images, texts, _ = self.query_inputs(category)
        queries = F.normalize(combine(images[start:stop], texts[start:stop]).float(), dim=-1)
        if not bool(torch.isfinite(queries).all()):
            raise NonFiniteQueriesError(f"{self.cache.root}: the combiner returned non-finite query embeddings "
                                        f"for {category}/{self.split} (did training diverge?)")
        return queries

    def evaluate(self, combine: Combine, metadata: dict | None = None, show_progress: bool = True) -> EvaluationResult:
        """Rank every query with ``combine`` and return the per-category metrics.

        ``combine`` receives raw reference-image and text features on :attr:`device` (float32) and may be
        any callable; an ``nn.Module`` is put in eval mode for the call and restored after. Gradients are off.
        """
        results = {}
        with torch.no_grad(), eval_mode(combine), progress(desc=f"eval {self.split}", total=self.num_queries,
                                                            unit="query", enabled=show_progress) as bar:
            for category in self.categories:
                ranks, subset_ranks = self._rank_all(category, combine, bar)
                q = self.queries[category]
                results[category] = CategoryResult(
                    category=category, recall=recall_from_ranks(ranks, self.ks), num_queries=len(ranks),
                    gallery_size=len(q.gallery_rows), ranks=ranks.cpu().numpy(), file_indices=q.file_indices,
                    excluded=q.excluded, outside_gallery=q.outside_gallery, missing_images=q.missing_images,
                    subset_recall=recall_from_ranks(subset_ranks, self.subset_ks) if subset_ranks is not None else {},
                    subset_ranks=subset_ranks.cpu().numpy() if subset_ranks is not None else None,
                    subset_sizes=self.subset_sizes(category) if subset_ranks is not None else None)
        return EvaluationResult(split=self.split, per_category=results, ks=self.ks, metadata=dict(metadata or {}),
                                protocol=self.registry_name, title=self.title, headline_metrics=self.headline_metrics,
                                subset_ks=self.subset_ks, gallery=self.gallery_name, description=self.description())

    def _rank_all(self, category: str, combine: Combine, bar: Any) -> tuple[Tensor, Tensor | None]:
        count = len(self.queries[category].positions)
        ranks, subset_ranks = [], []
        for start in range(0, count, self.batch_size):
            stop = min(start + self.batch_size, count)
            block, subset = self.rank(category, start, self.query_embeddings(category, combine, start, stop))
            ranks.append(block)
            if subset is not None:
                subset_ranks.append(subset)
            bar.update(stop - start)
        return torch.cat(ranks), (torch.cat(subset_ranks) if subset_ranks else None)


def default_protocol(dataset: str, split: str, has_targets: bool = True) -> str:
    """The protocol that evaluates ``split`` of a data set of kind ``dataset`` (its submission protocol when the
    split withholds its targets and the data set has one)."""
    if dataset not in _BY_DATASET:
        raise ConfigError(f"no evaluation protocol for data sets of kind {dataset!r}; "
                          f"known kinds: {', '.join(sorted(_BY_DATASET))}")
    ranked, submission = _BY_DATASET[dataset]
    return ranked if has_targets or submission is None else submission


def build_protocol(cache: FeatureCache, split: str = "val", name: str | None = None, **options: Any) -> Protocol:
    """The protocol ``name`` (by default the one of the cache's data set kind and ``split``) on ``cache``.

    ``options`` are the protocol's own (``categories``, ``device``, ``batch_size``, FashionIQ's ``gallery``...),
    checked by :meth:`Registry.build`.
    """
    if name is None:
        name = default_protocol(cache.dataset, split, split_has_targets(cache, split))
    protocol_class = PROTOCOLS.get(name)
    datasets = getattr(protocol_class, "datasets", ())
    if datasets and cache.dataset not in datasets:
        raise ConfigError(f"protocol {name!r} evaluates {' or '.join(datasets)} caches; {cache.root} holds a "
                          f"{cache.dataset} data set")
    return PROTOCOLS.build(name, cache, split=split, **options)


def evaluate_cache(cache: FeatureCache, combine: Combine, split: str = "val", name: str | None = None,
                   metadata: dict | None = None, show_progress: bool = True, **options: Any) -> Any:
    """Evaluate ``combine`` on ``cache`` with the protocol ``name`` (by default the cache's own, see
    :func:`build_protocol`), prepared for this one evaluation."""
    return build_protocol(cache, split, name, **options).evaluate(combine, metadata=metadata,
                                                                 show_progress=show_progress)


def split_has_targets(cache: FeatureCache, split: str) -> bool:
    """Whether any triplet of ``split`` in the cache has its target (test splits withhold them)."""
    table = cache.triplets
    return bool((table.target_rows[table.splits == split] >= 0).any())


def evaluated_categories(cache: FeatureCache, val_categories: list[str] | tuple[str, ...] | None,
                         trained: list[str] | tuple[str, ...] | None, split: str = "val") -> list[str]:
    """The categories a training run is validated on, by one rule for the trainer and ``compare``.

    ``val_categories`` when given; else the trained categories when they were chosen (``trained``,
    each once); else every cached category that has both a train and a ``split`` split (a category
    without validation images cannot be validated, so it is left out rather than refused).
    """
    if val_categories:
        return list(val_categories)
    if trained:
        return list(dict.fromkeys(trained))
    return [c for c in cache.categories() if cache.has_split(c, "train") and cache.has_split(c, split)]


@contextlib.contextmanager
def eval_mode(combine: Combine) -> Iterator[None]:
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


def _describe_excluded(queries: CategoryQueries) -> str:
    counts = [f"{len(v)} {reason.replace('_', ' ')}" for reason, v in queries.excluded.items() if v]
    return "left out: " + ", ".join(counts) if counts else "the caption file has no triplets"
