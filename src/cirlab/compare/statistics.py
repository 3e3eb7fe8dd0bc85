"""Statistics over seeds and queries: recalls from ranks, paired bootstrap intervals, verdicts, learning speed, chance.

The raw material is a run's **target ranks**: for one run (one strategy, one seed) and one evaluation, a mapping
``category -> int array`` of the ranked queries' 0-based target ranks (:func:`cirlab.evaluation.target_ranks`; a
query is a hit at K when its rank is below K; excluded queries are not in the array). Runs on the same cache and
split rank the same queries in the same order, so two strategies are paired query by query and seed by seed.

Metrics follow the FashionIQ protocol and any protocol built like it: ``R@K`` is the mean over categories of the
per-category Recall@K (percent), and ``headline`` the mean of ``R@K`` over the headline Ks (FashionIQ: 10 and 50).
A category without queries is skipped (and named in the results). Everything here is a pure function of its
inputs and, for the bootstrap, of its seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cirlab.compare.analysis import KS

#: The Ks whose mean Recall is the headline (FashionIQ: the mean of Recall@10 and Recall@50).
HEADLINE_KS: tuple[int, ...] = (10, 50)
#: Metrics compared against the baseline by default.
DEFAULT_METRICS: tuple[str, ...] = ("R@10", "R@50", "headline")
#: Bootstrap draws by default (percentile bounds need a few thousand).
DEFAULT_DRAWS = 2000
#: Draws whose resampled indices are held in memory at once.
_CHUNK = 128

RanksByCategory = Mapping[str, np.ndarray]


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
            headline_ks: Sequence[int] = HEADLINE_KS) -> Recalls:
    """Per-category Recall@K, their mean over categories and the headline, from one evaluation's target ranks."""
    import torch  # imported here, so that importing this module does not load torch

    from cirlab.evaluation.recall import recall_from_ranks

    wanted = sorted(set(ks) | set(headline_ks))
    per_category, skipped = {}, []
    for category in sorted(ranks_by_category):
        ranks = _ranks(ranks_by_category[category], category)
        if ranks.size == 0:
            skipped.append(category)
        else:
            per_category[category] = recall_from_ranks(torch.from_numpy(ranks), wanted)
    if not per_category:
        raise ValueError("no category has ranked queries")
    mean = {k: float(np.mean([r[k] for r in per_category.values()])) for k in wanted}
    return Recalls({c: {f"R@{k}": r[k] for k in ks} for c, r in per_category.items()},
                   _metrics(mean, ks, headline_ks), tuple(skipped))


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
                     confidence: float = 0.95, headline_ks: Sequence[int] = HEADLINE_KS) -> BootstrapResult:
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
    return _bootstrap(strategy_runs, baseline_runs, metrics, draws, seed, confidence, headline_ks)


def bootstrap(runs: Sequence[RanksByCategory], metrics: Sequence[str] = DEFAULT_METRICS, draws: int = DEFAULT_DRAWS,
              seed: int = 0, confidence: float = 0.95, headline_ks: Sequence[int] = HEADLINE_KS) -> BootstrapResult:
    """One strategy's metrics (mean over seeds) with percentile intervals, resampled as :func:`paired_bootstrap`."""
    return _bootstrap(runs, None, metrics, draws, seed, confidence, headline_ks)


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
                  headline_ks: Sequence[int] = HEADLINE_KS) -> dict[str, float]:
    """Recall@K (percent) of a random ranking: a target uniformly placed among N items is a hit with chance min(K/N, 1).

    With one gallery per category (pass those of the categories with queries), the mean over categories, as for
    real recalls; ``headline`` is the mean over the headline Ks.
    """
    sizes = gallery_sizes if isinstance(gallery_sizes, Mapping) else {"all": gallery_sizes}
    if not sizes or any(int(n) < 1 for n in sizes.values()):
        raise ValueError(f"chance level needs galleries of at least one item, got {dict(sizes)}")
    mean = {k: float(np.mean([100.0 * min(k / int(n), 1.0) for n in sizes.values()]))
            for k in sorted(set(ks) | set(headline_ks))}
    return _metrics(mean, ks, headline_ks)


def above_chance(run_recall_at_10: Estimate, chance_at_10: float) -> bool:
    """Whether a run is clearly above chance: mean R@10 over seeds above twice chance, and its lower bound above chance.

    ``run_recall_at_10`` is the run's own R@10 from :func:`bootstrap`. The lower bound rules out that chance
    explains the recall (few queries); the factor of two rules out a recall that is significant yet too small to
    say anything about learning (many queries). A gallery of at most 10 items (chance 100%) is never above chance.
    """
    return run_recall_at_10.observed > 2.0 * chance_at_10 and run_recall_at_10.low > chance_at_10


def _bootstrap(runs: Sequence[RanksByCategory], baselines: Sequence[RanksByCategory] | None, metrics: Sequence[str],
               draws: int, seed: int, confidence: float, headline_ks: Sequence[int]) -> BootstrapResult:
    """The bootstrap of :func:`paired_bootstrap`; without ``baselines``, of the runs' own metrics."""
    if not runs:
        raise ValueError("the bootstrap needs at least one seed")
    if draws < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"the bootstrap needs draws >= 1 and 0 < confidence < 1, got {draws} and {confidence}")
    weights = {name: _metric_weights(name, headline_ks) for name in metrics}
    ks = sorted({k for w in weights.values() for k in w})
    queries = {c: len(_ranks(r, c)) for c, r in sorted(runs[0].items())}
    for i, run in enumerate([*runs, *(baselines or [])]):
        sizes = {c: len(_ranks(r, c)) for c, r in sorted(run.items())}
        if sizes != queries:
            raise ValueError(f"runs are not paired: run {i} has queries per category {sizes}, run 0 {queries}")
    sizes = {c: n for c, n in queries.items() if n}
    if not sizes:
        raise ValueError("no category has ranked queries")
    # Per category, one contiguous row per K over (seed, query): the run's hit minus the baseline's (-1, 0 or 1).
    diffs = {}
    for c in sizes:
        hits = np.stack([_ranks(run[c], c) < np.array(ks)[:, None] for run in runs], axis=1).astype(np.int8)
        if baselines is not None:
            hits -= np.stack([_ranks(run[c], c) < np.array(ks)[:, None] for run in baselines], axis=1).astype(np.int8)
        diffs[c] = hits.reshape(len(ks), -1)
    per_k = _draw(diffs, sizes, len(runs), draws, np.random.default_rng(seed))
    observed = _observed(runs, baselines, metrics, headline_ks)
    tail = 100.0 * (1.0 - confidence) / 2.0
    estimates = {}
    for name, w in weights.items():
        # Rounded to 1e-9 points so that floating-point noise cannot turn an exact tie into a win (2/6 vs 3/9).
        stat = np.round(sum(weight * per_k[:, ks.index(k)] for k, weight in w.items()), 9) + 0.0
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
              headline_ks: Sequence[int]) -> dict[str, float]:
    """Each metric of the runs (minus the baselines') on the original data, averaged over seeds."""
    ks = sorted({k for name in metrics for k in _metric_weights(name, headline_ks)})
    values = [recalls(run, ks, headline_ks).metrics for run in runs]
    if baselines is not None:
        values = [{name: v[name] - b[name] for name in v}
                  for v, b in zip(values, (recalls(run, ks, headline_ks).metrics for run in baselines))]
    return {name: float(np.mean([v[name] for v in values])) for name in metrics}


def _metrics(mean: Mapping[int, float], ks: Sequence[int], headline_ks: Sequence[int]) -> dict[str, float]:
    """``{"R@K": mean[K]}`` for each K of ``ks``, and ``headline``: the mean over ``headline_ks`` (if any)."""
    metrics = {f"R@{k}": mean[k] for k in ks}
    if headline_ks:
        metrics["headline"] = float(np.mean([mean[k] for k in headline_ks]))
    return metrics


def _metric_weights(name: str, headline_ks: Sequence[int]) -> dict[int, float]:
    """The metric ``name`` as a weighted sum of mean Recall@K: ``R@K`` is K alone, ``headline`` the mean of its Ks."""
    if name == "headline" and headline_ks:
        return {k: 1.0 / len(headline_ks) for k in headline_ks}
    if name.startswith("R@") and name[2:].isdigit() and int(name[2:]) >= 1:
        return {int(name[2:]): 1.0}
    raise ValueError(f"unknown metric {name!r}: expected 'R@K' (K a positive integer) or 'headline'")


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
