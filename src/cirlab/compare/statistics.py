"""Statistics over seeds and queries: recalls from ranks, paired bootstrap intervals, verdicts, learning speed, chance.

The raw material is a run's **target ranks**: for one run (one strategy, one seed) and one evaluation, a mapping
``category -> int array`` of the ranked queries' 0-based target ranks (:func:`cirlab.evaluation.target_ranks`; a
query is a hit at K when its rank is below K; excluded queries are not in the array). Runs on the same cache and
split rank the same queries in the same order, so two strategies are paired query by query and seed by seed.

Metrics follow the evaluation protocols: ``R@K`` is the mean over categories of the per-category Recall@K
(percent); ``Rs@K`` the same of Recall_subset@K, for a protocol that ranks each target within a subset (CIRR: a
category's entry is then a :class:`~cirlab.evaluation.ranks.CategoryRanks` with ``subset_ranks``); and
``headline`` the mean of the protocol's headline metrics (FashionIQ: ``R@10`` and ``R@50``; CIRR: ``R@5`` and
``Rs@1``). A category without queries is skipped (and named in the results). Everything here is a pure function
of its inputs and, for the bootstrap, of its seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cirlab.compare.analysis import KS

#: The K of Recall_subset@K (CIRR's).
SUBSET_KS: tuple[int, ...] = (1, 2, 3)

#: The metrics whose mean is the headline by default (FashionIQ: the mean of Recall@10 and Recall@50).
HEADLINE: tuple[str, ...] = ("R@10", "R@50")
#: Name prefixes of the two kinds of rank: over the gallery, and within the query's subset.
RANK_KINDS: dict[str, str] = {"R@": "ranks", "Rs@": "subset_ranks"}
#: Metrics compared against the baseline by default.
DEFAULT_METRICS: tuple[str, ...] = ("R@10", "R@50", "headline")
#: Bootstrap draws by default (percentile bounds need a few thousand).
DEFAULT_DRAWS = 2000
#: Draws whose resampled indices are held in memory at once.
_CHUNK = 128

#: Per category, the target ranks (an array), or an object with ``ranks`` and ``subset_ranks`` arrays.
RanksByCategory = Mapping[str, Any]
#: A metric's parts: (rank kind, K) -> weight.
Weights = dict[tuple[str, int], float]


@dataclass(frozen=True)
class Recalls:
    """Recall of one evaluation: per category and averaged over categories, in percent."""

    per_category: dict[str, dict[str, float]]  # category -> {"R@K": recall}; categories with queries only
    metrics: dict[str, float]  # "R@K" (mean over categories) and "headline"
    skipped: tuple[str, ...] = ()  # categories without queries

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"per_category": self.per_category, "mean": self.metrics, "skipped_categories": list(self.skipped)}


@dataclass(frozen=True)
class SeedStats:
    """One metric over seeds: mean and sample standard deviation (ddof=1; 0 with one seed)."""

    mean: float
    std: float
    values: tuple[float, ...]  # per seed, in seed order

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"mean": self.mean, "std": self.std, "seeds": len(self.values), "values": list(self.values)}


@dataclass(frozen=True)
class Estimate:
    """A bootstrap estimate of one metric, or of a difference of one metric between two strategies (points)."""

    observed: float  # on the original data: the mean over seeds
    low: float  # percentile interval at the result's confidence
    high: float
    win_share: float  # share of draws above zero (for a difference: draws in which the strategy is better)
    tie_share: float  # share of draws exactly zero

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies strictly on one side of zero (an interval touching zero does not)."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class BootstrapResult:
    """Estimates per metric from one bootstrap, with what it resampled."""

    estimates: dict[str, Estimate]  # metric name -> estimate
    draws: int
    seeds: int
    confidence: float
    rng_seed: int
    queries: dict[str, int]  # category -> queries resampled (per seed)
    skipped: tuple[str, ...] = ()  # categories without queries

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"metrics": {name: e.to_dict() for name, e in self.estimates.items()}, "draws": self.draws,
                "seeds": self.seeds, "confidence": self.confidence, "rng_seed": self.rng_seed,
                "queries": self.queries, "skipped_categories": list(self.skipped)}


@dataclass(frozen=True)
class StrategySpeed:
    """When one strategy's seeds first reached the threshold."""

    epochs: tuple[int | None, ...]  # per seed: first evaluated epoch with mean R@10 >= threshold, None if never
    mean_epoch: float | None  # over the seeds that reach it; None if none does
    never: int  # seeds that never reach it
    ratio: float | None  # mean_epoch / the baseline's mean_epoch; None when either is undefined or the baseline's is 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "epochs": list(self.epochs)}


@dataclass(frozen=True)
class LearningSpeed:
    """The first epoch at which each strategy reaches one fixed mean-R@10 threshold."""

    threshold: float
    rule: str  # how the threshold was chosen, in words
    baseline: str
    strategies: dict[str, StrategySpeed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"metric": "R@10", "threshold": self.threshold, "rule": self.rule, "baseline": self.baseline,
                "strategies": {name: s.to_dict() for name, s in self.strategies.items()}}


def recalls(ranks_by_category: RanksByCategory, ks: Sequence[int] = KS,
            headline: Sequence[str] = HEADLINE) -> Recalls:
    """Per-category Recall@K (and Recall_subset@K where the ranks have subsets), their mean over categories and
    the headline, from one evaluation's target ranks."""
    names = [f"R@{k}" for k in ks]
    if any(_has_subsets(value) for value in ranks_by_category.values()):
        names += [f"Rs@{k}" for k in SUBSET_KS]
    parts = sorted({part for name in (*names, *headline) for part in _metric_weights(name, headline)})
    per_category, skipped = {}, []
    for category in sorted(ranks_by_category):
        kinds = _rank_kinds(ranks_by_category[category], category)
        if kinds["R@"].size == 0:
            skipped.append(category)
        else:
            per_category[category] = {part: _recall(kinds[part[0]], part[1]) for part in parts}
    if not per_category:
        raise ValueError("no category has ranked queries")
    mean = {part: float(np.mean([r[part] for r in per_category.values()])) for part in parts}
    return Recalls({c: {name: r[_single(name)] for name in names} for c, r in per_category.items()},
                   _metrics(mean, names, headline), tuple(skipped))


def summarise_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, SeedStats]:
    """Mean and sample standard deviation over seeds of every metric (``per_seed[i]`` holds seed i's metrics)."""
    if not per_seed:
        raise ValueError("no seed to summarise")
    names = list(per_seed[0])
    if any(set(metrics) != set(names) for metrics in per_seed):
        raise ValueError(f"seeds report different metrics: {[sorted(m) for m in per_seed]}")
    out = {}
    for name in names:
        values = np.array([float(metrics[name]) for metrics in per_seed])
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[name] = SeedStats(float(values.mean()), std, tuple(float(v) for v in values))
    return out


def paired_bootstrap(strategy_runs: Sequence[RanksByCategory], baseline_runs: Sequence[RanksByCategory],
                     metrics: Sequence[str] = DEFAULT_METRICS, draws: int = DEFAULT_DRAWS, seed: int = 0,
                     confidence: float = 0.95, headline: Sequence[str] = HEADLINE) -> BootstrapResult:
    """Strategy − baseline for each metric, with a percentile interval from a paired bootstrap over seeds and queries.

    Element i of both lists comes from seed i. Each draw resamples the seeds with replacement and, within each drawn
    seed, the queries of each category with replacement (stratified, so the mean over categories stays defined),
    the same seeds and queries for both strategies; its statistic is the difference of the metric averaged over
    the drawn seeds. With one seed only queries are resampled; identical runs give 0 with a zero-width interval.

    Draw order (so that a naive loop can replay it): for each draw, ``rng.integers(0, S, size=S)`` for the seeds,
    then for each category with queries, in sorted order, ``rng.integers(0, n_c, size=(S, n_c))`` for the queries,
    with ``rng = np.random.default_rng(seed)``.
    """
    if len(strategy_runs) != len(baseline_runs):
        raise ValueError(f"paired runs need as many strategy seeds as baseline seeds, got {len(strategy_runs)} "
                         f"and {len(baseline_runs)}")
    return _bootstrap(strategy_runs, baseline_runs, metrics, draws, seed, confidence, headline)


def bootstrap(runs: Sequence[RanksByCategory], metrics: Sequence[str] = DEFAULT_METRICS, draws: int = DEFAULT_DRAWS,
              seed: int = 0, confidence: float = 0.95, headline: Sequence[str] = HEADLINE) -> BootstrapResult:
    """One strategy's metrics (mean over seeds) with percentile intervals, resampled as :func:`paired_bootstrap`."""
    return _bootstrap(runs, None, metrics, draws, seed, confidence, headline)


def verdict(name: str, baseline_name: str, result: BootstrapResult, metric: str = "R@10") -> str:
    """A difference stated only where its interval excludes zero; else that none was detected, with the interval."""
    e = result.estimates[metric]
    interval = f"[{e.low:+.1f}, {e.high:+.1f}]"
    if e.excludes_zero:
        return f"{name} {'>' if e.low > 0 else '<'} {baseline_name} by {e.observed:+.1f} {metric} {interval}"
    return (f"no difference between {name} and {baseline_name} detected at this budget: "
            f"Δ {metric} {e.observed:+.1f} {interval}")


def learning_speed(histories: Mapping[str, Sequence[Mapping[int, float]]], baseline: str,
                   threshold: float | None = None) -> LearningSpeed:
    """First epoch at which each strategy's seeds reach one fixed mean-R@10 threshold, and the ratio to the baseline's.

    ``histories[strategy][i]`` maps each evaluated epoch of seed i to its mean R@10 (percent). The threshold is
    ``threshold`` if given, else the baseline's mean over seeds of its final (last evaluated) R@10.
    """
    if baseline not in histories:
        raise ValueError(f"baseline {baseline!r} is not among the strategies {sorted(histories)}")
    for name, seeds in histories.items():
        if not seeds or any(not history for history in seeds):
            raise ValueError(f"strategy {name!r} has a seed without an evaluated epoch")
    rule = "given"
    if threshold is None:
        threshold = float(np.mean([history[max(history)] for history in histories[baseline]]))
        rule = f"{baseline}'s mean final R@10 over {len(histories[baseline])} seeds"
    reached = {name: tuple(_first_epoch(history, threshold) for history in seeds) for name, seeds in histories.items()}
    means = {name: _mean_reached(epochs) for name, epochs in reached.items()}
    base = means[baseline]
    strategies = {name: StrategySpeed(epochs, means[name], sum(e is None for e in epochs),
                                      None if means[name] is None or not base else means[name] / base)
                  for name, epochs in reached.items()}
    return LearningSpeed(float(threshold), rule, baseline, strategies)


def chance_recall(gallery_sizes: int | Mapping[str, int], ks: Sequence[int] = KS,
                  headline: Sequence[str] = HEADLINE, subset_sizes: Mapping[str, np.ndarray] | None = None
                  ) -> dict[str, float]:
    """Recall@K (percent) of a random ranking: a target uniformly placed among N items is a hit with chance min(K/N, 1).

    With one gallery per category (pass those of the categories with queries), the mean over categories, as for
    real recalls; ``headline`` is the mean of the headline metrics. ``subset_sizes`` (per category, each query's
    subset size without its reference) adds ``Rs@K``, each query's chance being min(K/size, 1).
    """
    sizes = gallery_sizes if isinstance(gallery_sizes, Mapping) else {"all": gallery_sizes}
    if not sizes or any(int(n) < 1 for n in sizes.values()):
        raise ValueError(f"chance level needs galleries of at least one item, got {dict(sizes)}")
    names = [f"R@{k}" for k in ks] + ([f"Rs@{k}" for k in SUBSET_KS] if subset_sizes else [])
    parts = sorted({part for name in (*names, *headline) for part in _metric_weights(name, headline)})
    mean = {}
    for kind, k in parts:
        if kind == "R@":
            mean[kind, k] = float(np.mean([100.0 * min(k / int(n), 1.0) for n in sizes.values()]))
        elif subset_sizes:
            mean[kind, k] = float(np.mean([100.0 * np.mean(np.minimum(k / np.maximum(np.asarray(n), 1), 1.0))
                                           for n in subset_sizes.values()]))
        else:
            raise ValueError(f"chance of {kind}{k} needs the subsets' sizes")
    return _metrics(mean, names, headline)


def above_chance(run_recall_at_10: Estimate, chance_at_10: float) -> bool:
    """Whether a run is clearly above chance: mean R@10 over seeds above twice chance, and its lower bound above chance.

    ``run_recall_at_10`` is the run's own R@10 from :func:`bootstrap`. The lower bound rules out that chance
    explains the recall (few queries); the factor of two rules out a recall that is significant yet too small to
    say anything about learning (many queries). A gallery of at most 10 items (chance 100%) is never above chance.
    """
    return run_recall_at_10.observed > 2.0 * chance_at_10 and run_recall_at_10.low > chance_at_10


def _bootstrap(runs: Sequence[RanksByCategory], baselines: Sequence[RanksByCategory] | None, metrics: Sequence[str],
               draws: int, seed: int, confidence: float, headline: Sequence[str]) -> BootstrapResult:
    """The bootstrap of :func:`paired_bootstrap`; without ``baselines``, of the runs' own metrics."""
    if not runs:
        raise ValueError("the bootstrap needs at least one seed")
    if draws < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"the bootstrap needs draws >= 1 and 0 < confidence < 1, got {draws} and {confidence}")
    weights = {name: _metric_weights(name, headline) for name in metrics}
    parts = sorted({part for w in weights.values() for part in w})
    queries = {c: len(_rank_kinds(r, c)["R@"]) for c, r in sorted(runs[0].items())}
    for i, run in enumerate([*runs, *(baselines or [])]):
        sizes = {c: len(_rank_kinds(r, c)["R@"]) for c, r in sorted(run.items())}
        if sizes != queries:
            raise ValueError(f"runs are not paired: run {i} has queries per category {sizes}, run 0 {queries}")
    sizes = {c: n for c, n in queries.items() if n}
    if not sizes:
        raise ValueError("no category has ranked queries")
    # Per category, one contiguous row per metric part over (seed, query): the run's hit minus the baseline's.
    diffs = {}
    for c in sizes:
        hits = np.stack([_hits(run[c], c, parts) for run in runs], axis=1).astype(np.int8)
        if baselines is not None:
            hits -= np.stack([_hits(run[c], c, parts) for run in baselines], axis=1).astype(np.int8)
        diffs[c] = hits.reshape(len(parts), -1)
    per_k = _draw(diffs, sizes, len(runs), draws, np.random.default_rng(seed))
    observed = _observed(runs, baselines, metrics, headline)
    tail = 100.0 * (1.0 - confidence) / 2.0
    estimates = {}
    for name, w in weights.items():
        # Rounded to 1e-9 points so that floating-point noise cannot turn an exact tie into a win (2/6 vs 3/9).
        stat = np.round(sum(weight * per_k[:, parts.index(part)] for part, weight in w.items()), 9) + 0.0
        low, high = np.percentile(stat, [tail, 100.0 - tail])
        estimates[name] = Estimate(observed[name], float(low), float(high), float(np.mean(stat > 0)),
                                   float(np.mean(stat == 0)))
    return BootstrapResult(estimates, draws, len(runs), confidence, seed, sizes,
                           tuple(c for c, n in queries.items() if not n))


def _draw(diffs: Mapping[str, np.ndarray], sizes: Mapping[str, int], num_seeds: int, draws: int,
          rng: np.random.Generator) -> np.ndarray:
    """``[draws, K]``: each draw's mean over drawn seeds and categories of the difference in Recall@K (points).

    The draws are taken in the order :func:`paired_bootstrap` states, ``_CHUNK`` at a time; the sums are gathers
    from one contiguous row per K (several times faster than gathering rows of K values).
    """
    per_k = np.empty((draws, len(next(iter(diffs.values())))))
    for start in range(0, draws, _CHUNK):
        size = min(_CHUNK, draws - start)
        drawn_seeds = np.empty((size, num_seeds), dtype=np.int64)
        drawn = {c: np.empty((size, num_seeds, n), dtype=np.int64) for c, n in sizes.items()}
        for b in range(size):
            drawn_seeds[b] = rng.integers(0, num_seeds, size=num_seeds)
            for c, n in sizes.items():
                drawn[c][b] = rng.integers(0, n, size=(num_seeds, n))
        total = np.zeros((size, per_k.shape[1]))
        for c, n in sizes.items():
            columns = drawn_seeds[:, :, None] * n + drawn[c]  # [size, seeds, n]: columns of diffs[c]
            for i, row in enumerate(diffs[c]):
                total[:, i] += np.take(row, columns).sum(axis=(1, 2), dtype=np.int64) * (100.0 / n)
        per_k[start:start + size] = total / (num_seeds * len(sizes))
    return per_k


def _observed(runs: Sequence[RanksByCategory], baselines: Sequence[RanksByCategory] | None, metrics: Sequence[str],
              headline: Sequence[str]) -> dict[str, float]:
    """Each metric of the runs (minus the baselines') on the original data, averaged over seeds."""
    values = [_metric_values(run, metrics, headline) for run in runs]
    if baselines is not None:
        values = [{name: v[name] - b[name] for name in v}
                  for v, b in zip(values, (_metric_values(run, metrics, headline) for run in baselines))]
    return {name: float(np.mean([v[name] for v in values])) for name in metrics}


def _metric_values(run: RanksByCategory, metrics: Sequence[str], headline: Sequence[str]) -> dict[str, float]:
    """``metrics`` of one evaluation, each the weighted sum of its parts' means over categories."""
    parts = sorted({part for name in metrics for part in _metric_weights(name, headline)})
    per_category = [{part: _recall(_rank_kinds(ranks, c)[part[0]], part[1]) for part in parts}
                    for c, ranks in sorted(run.items()) if len(_rank_kinds(ranks, c)["R@"])]
    if not per_category:
        raise ValueError("no category has ranked queries")
    mean = {part: float(np.mean([r[part] for r in per_category])) for part in parts}
    return {name: sum(w * mean[part] for part, w in _metric_weights(name, headline).items()) for name in metrics}


def _metrics(mean: Mapping[tuple[str, int], float], names: Sequence[str], headline: Sequence[str]) -> dict[str, float]:
    """Each metric of ``names`` from the parts' means, and ``headline``: the mean of the headline metrics (if any)."""
    metrics = {name: mean[_single(name)] for name in names}
    if headline:
        metrics["headline"] = float(np.mean([mean[_single(name)] for name in headline]))
    return metrics


def _metric_weights(name: str, headline: Sequence[str]) -> Weights:
    """The metric ``name`` as a weighted sum of parts: ``R@K``/``Rs@K`` is its part alone, ``headline`` the mean of
    the headline metrics."""
    if name == "headline" and headline:
        return {_single(metric): 1.0 / len(headline) for metric in headline}
    return {_single(name): 1.0}


def _single(name: str) -> tuple[str, int]:
    """``R@K`` or ``Rs@K`` as its part ``(prefix, K)``."""
    for prefix in RANK_KINDS:
        rest = name[len(prefix):] if name.startswith(prefix) else ""
        if rest.isdigit() and int(rest) >= 1:
            return prefix, int(rest)
    raise ValueError(f"unknown metric {name!r}: expected 'R@K', 'Rs@K' (K a positive integer) or 'headline'")


def _recall(ranks: np.ndarray, k: int) -> float:
    """Recall@K in percent, computed as :func:`cirlab.evaluation.recall.recall_from_ranks` computes it (the same
    float operations, so that both agree exactly)."""
    return float((ranks < k).sum()) * 100.0 / ranks.size


def _has_subsets(value: Any) -> bool:
    return getattr(value, "subset_ranks", None) is not None


def _rank_kinds(value: Any, category: str) -> dict[str, np.ndarray]:
    """A category's ranks by kind prefix (``R@``; ``Rs@`` when it has subset ranks), each checked."""
    if hasattr(value, "ranks"):
        kinds = {"R@": _ranks(value.ranks, category)}
        if _has_subsets(value):
            kinds["Rs@"] = _ranks(value.subset_ranks, category)
        return kinds
    return {"R@": _ranks(value, category)}


def _hits(value: Any, category: str, parts: Sequence[tuple[str, int]]) -> np.ndarray:
    """``[len(parts), Q]``: whether each query is a hit for each metric part."""
    kinds = _rank_kinds(value, category)
    missing = sorted({kind for kind, _ in parts if kind not in kinds})
    if missing:
        raise ValueError(f"category {category!r}: {missing[0]}K needs subset ranks, which this evaluation lacks")
    return np.stack([kinds[kind] < k for kind, k in parts]) if parts else np.zeros((0, len(kinds["R@"])), bool)


def _ranks(ranks: Any, category: str) -> np.ndarray:
    """``ranks`` as a fresh 1-D int64 array of non-negative ranks, or a one-line error naming the category."""
    array = np.asarray(ranks)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise ValueError(f"category {category!r}: ranks must be a 1-D integer array, got {array.dtype} {array.shape}")
    if array.size and array.min() < 0:
        raise ValueError(f"category {category!r}: ranks are 0-based and cannot be negative")
    return np.array(array, dtype=np.int64)


def _first_epoch(history: Mapping[int, float], threshold: float) -> int | None:
    """The first evaluated epoch whose value is at least ``threshold``; ``None`` if none is."""
    return next((epoch for epoch in sorted(history) if history[epoch] >= threshold), None)


def _mean_reached(epochs: Sequence[int | None]) -> float | None:
    reached = [e for e in epochs if e is not None]
    return float(np.mean(reached)) if reached else None
