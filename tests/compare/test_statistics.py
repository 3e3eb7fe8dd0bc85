"""Statistics over seeds and queries, checked by hand and against a naive bootstrap that replays the same draws."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from cirlab.compare.statistics import (
    BootstrapResult,
    Estimate,
    above_chance,
    bootstrap,
    chance_recall,
    learning_speed,
    paired_bootstrap,
    recalls,
    summarise_seeds,
    verdict,
)
from cirlab.evaluation.recall import OUTSIDE_GALLERY

# Hand-made 0-based ranks: two seeds, two categories with queries and one without.
STRATEGY = [
    {"dress": np.array([0, 3, 9, 12, 49, 70]), "shirt": np.array([1, 10, 40, 55, 2]), "toptee": np.array([], int)},
    {"dress": np.array([5, 8, 11, 30, 60, 2]), "shirt": np.array([0, 9, 51, 20, 80]), "toptee": np.array([], int)},
]
BASELINE = [
    {"dress": np.array([4, 15, 9, 50, 49, 90]), "shirt": np.array([30, 10, 60, 5, 2]), "toptee": np.array([], int)},
    {"dress": np.array([12, 8, 40, 3, 61, 70]), "shirt": np.array([7, 19, 51, 49, 9]), "toptee": np.array([], int)},
]


def naive_bootstrap(runs, baselines, ks, headline, draws, seed, confidence=0.95):
    """Loops and exact fractions over the same draws as the vectorised bootstrap (the order its docstring states).

    Returns ``{metric: (low, high, win_share, tie_share)}`` for ``R@K`` of each K and, if ``headline``, the headline.
    """
    rng = np.random.default_rng(seed)
    categories = sorted(c for c, r in runs[0].items() if len(r))
    num_seeds = len(runs)
    stats = {f"R@{k}": [] for k in ks} | ({"headline": []} if headline else {})
    for _ in range(draws):
        seeds = rng.integers(0, num_seeds, size=num_seeds)
        picks = {c: rng.integers(0, len(runs[0][c]), size=(num_seeds, len(runs[0][c]))) for c in categories}
        per_k = {}
        for k in ks:
            total = Fraction(0)
            for j, s in enumerate(seeds):
                for c in categories:
                    hits = sum(int(runs[s][c][i] < k) for i in picks[c][j])
                    if baselines is not None:
                        hits -= sum(int(baselines[s][c][i] < k) for i in picks[c][j])
                    total += Fraction(100 * hits, len(picks[c][j]))
            per_k[k] = total / (num_seeds * len(categories))
            stats[f"R@{k}"].append(per_k[k])
        if headline:
            stats["headline"].append(sum(per_k[k] for k in headline) / len(headline))
    tail = 100 * (1 - confidence) / 2
    out = {}
    for name, values in stats.items():
        low, high = np.percentile([float(v) for v in values], [tail, 100 - tail])
        out[name] = (low, high, sum(v > 0 for v in values) / draws, sum(v == 0 for v in values) / draws)
    return out


def assert_matches_naive(result: BootstrapResult, naive: dict) -> None:
    for name, (low, high, wins, ties) in naive.items():
        estimate = result.estimates[name]
        assert estimate.low == pytest.approx(low, abs=1e-9) and estimate.high == pytest.approx(high, abs=1e-9), name
        assert (estimate.win_share, estimate.tie_share) == (wins, ties), name


# --- recalls and seeds -------------------------------------------------------------------------------------------

def test_recalls_counts_0_based_ranks_below_k_and_averages_categories():
    ranks = {"shirt": np.array([0, 9, 10, 49, OUTSIDE_GALLERY]), "dress": np.array([4, 50]), "toptee": np.array([])}
    result = recalls(ranks, ks=(1, 10, 50))
    # shirt: rank 9 is a hit at 10, rank 10 is not; the target outside the gallery is a miss at every K.
    assert result.per_category == {"dress": {"R@1": 0.0, "R@10": 50.0, "R@50": 50.0},
                                   "shirt": {"R@1": 20.0, "R@10": 40.0, "R@50": 80.0}}
    assert result.metrics == {"R@1": 10.0, "R@10": 45.0, "R@50": 65.0, "headline": 55.0}
    assert result.skipped == ("toptee",)
    assert json.loads(json.dumps(result.to_dict()))["skipped_categories"] == ["toptee"]


def test_recalls_computes_the_headline_ks_even_when_not_listed():
    assert recalls({"a": np.array([5, 20])}, ks=(1,)).metrics == {"R@1": 0.0, "headline": 75.0}


@pytest.mark.parametrize("ranks, message", [
    ({"a": np.array([1, -1])}, "cannot be negative"),
    ({"a": np.array([0.5])}, "1-D integer array"),
    ({"a": np.array([[1]])}, "1-D integer array"),
    ({"a": np.array([], int)}, "no category has ranked queries"),
])
def test_recalls_refuses_bad_ranks(ranks, message):
    with pytest.raises(ValueError, match=message):
        recalls(ranks)


def test_seed_summary_is_mean_and_sample_std():
    stats = summarise_seeds([{"R@10": 70.0, "headline": 80.0}, {"R@10": 72.0, "headline": 80.0},
                             {"R@10": 74.0, "headline": 80.0}])
    assert (stats["R@10"].mean, stats["R@10"].std, stats["R@10"].values) == (72.0, 2.0, (70.0, 72.0, 74.0))
    assert stats["headline"].std == 0.0
    assert stats["R@10"].to_dict() == {"mean": 72.0, "std": 2.0, "seeds": 3, "values": [70.0, 72.0, 74.0]}
    assert summarise_seeds([{"R@10": 70.0}])["R@10"].std == 0.0  # one seed: no spread, not NaN
    with pytest.raises(ValueError, match="different metrics"):
        summarise_seeds([{"R@10": 70.0}, {"R@50": 1.0}])


# --- the bootstrap ---------------------------------------------------------------------------------------------------

def test_paired_bootstrap_matches_a_naive_loop_over_the_same_draws():
    result = paired_bootstrap(STRATEGY, BASELINE, metrics=("R@10", "R@50", "headline"), draws=300, seed=7)
    assert_matches_naive(result, naive_bootstrap(STRATEGY, BASELINE, (10, 50), (10, 50), draws=300, seed=7))
    assert (result.draws, result.seeds, result.rng_seed) == (300, 2, 7)
    assert result.queries == {"dress": 6, "shirt": 5} and result.skipped == ("toptee",)


def test_paired_bootstrap_observed_difference_is_the_mean_over_seeds():
    result = paired_bootstrap(STRATEGY, BASELINE, metrics=("R@10",), draws=10)
    by_seed = [recalls(s).metrics["R@10"] - recalls(b).metrics["R@10"] for s, b in zip(STRATEGY, BASELINE)]
    assert result.estimates["R@10"].observed == pytest.approx(np.mean(by_seed))
    assert list(result.estimates) == ["R@10"]


def test_one_seed_resamples_only_queries():
    result = paired_bootstrap(STRATEGY[:1], BASELINE[:1], metrics=("R@1", "R@10"), draws=200, seed=3)
    assert_matches_naive(result, naive_bootstrap(STRATEGY[:1], BASELINE[:1], (1, 10), (), draws=200, seed=3))
    assert result.seeds == 1 and result.estimates["R@10"].low < result.estimates["R@10"].high


def test_identical_runs_give_zero_with_a_zero_width_interval():
    result = paired_bootstrap(STRATEGY, [dict(run) for run in STRATEGY], draws=100)
    for estimate in result.estimates.values():
        assert (estimate.observed, estimate.low, estimate.high) == (0.0, 0.0, 0.0)
        assert (estimate.win_share, estimate.tie_share) == (0.0, 1.0)


def test_a_tie_across_categories_of_different_sizes_is_a_tie_not_a_rounding_win():
    # One query of six wins in "a", one of nine loses in "b": a draw with 2 picks of the first and 3 of the second
    # ties exactly (2/6 = 3/9), which floating point alone would score as a tiny win.
    strategy = [{"a": np.array([0, 99, 99, 99, 99, 99]), "b": np.full(9, 99)}]
    baseline = [{"a": np.full(6, 99), "b": np.array([0, 99, 99, 99, 99, 99, 99, 99, 99])}]
    result = paired_bootstrap(strategy, baseline, metrics=("R@10",), draws=2000, seed=1)
    assert_matches_naive(result, naive_bootstrap(strategy, baseline, (10,), (), draws=2000, seed=1))


def test_pairing_keeps_a_consistent_gain_separated_from_zero():
    # The strategy hits every query the baseline hits, and more: every draw's difference is >= 0.
    rng = np.random.default_rng(0)
    base = [{"a": rng.integers(0, 40, size=200), "b": rng.integers(0, 40, size=150)} for _ in range(3)]
    better = [{c: np.where(r % 4 == 0, 0, r) for c, r in run.items()} for run in base]
    estimate = paired_bootstrap(better, base, draws=500).estimates["R@10"]
    assert estimate.low > 0 and estimate.win_share == 1.0 and estimate.excludes_zero


def test_bootstrap_of_one_strategy_matches_a_naive_loop_and_brackets_its_mean():
    result = bootstrap(STRATEGY, metrics=("R@10", "R@50", "headline"), draws=300, seed=2)
    assert_matches_naive(result, naive_bootstrap(STRATEGY, None, (10, 50), (10, 50), draws=300, seed=2))
    estimate = result.estimates["R@10"]
    assert estimate.observed == pytest.approx(np.mean([recalls(run).metrics["R@10"] for run in STRATEGY]))
    assert estimate.low <= estimate.observed <= estimate.high


def test_bootstrap_is_deterministic_given_its_seed_and_json_ready():
    first = paired_bootstrap(STRATEGY, BASELINE, draws=200, seed=5)
    assert paired_bootstrap(STRATEGY, BASELINE, draws=200, seed=5) == first
    assert paired_bootstrap(STRATEGY, BASELINE, draws=200, seed=6) != first
    data = json.loads(json.dumps(first.to_dict()))
    assert set(data["metrics"]) == {"R@10", "R@50", "headline"}
    assert set(data["metrics"]["R@10"]) == {"observed", "low", "high", "win_share", "tie_share"}
    assert data["skipped_categories"] == ["toptee"] and data["confidence"] == 0.95


@pytest.mark.parametrize("strategy, baseline, kwargs, message", [
    (STRATEGY, BASELINE[:1], {}, "as many strategy seeds as baseline seeds"),
    (STRATEGY, [BASELINE[0], {**BASELINE[1], "dress": np.arange(5)}], {}, "not paired"),
    (STRATEGY, [BASELINE[0], {"dress": BASELINE[1]["dress"], "shirt": BASELINE[1]["shirt"]}], {}, "not paired"),
    (STRATEGY, BASELINE, {"metrics": ("R@0",)}, "unknown metric"),
    (STRATEGY, BASELINE, {"metrics": ("headline",), "headline": ()}, "unknown metric"),
    (STRATEGY, BASELINE, {"draws": 0}, "draws >= 1"),
    (STRATEGY, BASELINE, {"confidence": 1.0}, "confidence"),
    ([], [], {}, "at least one seed"),
])
def test_paired_bootstrap_refuses_unpaired_or_bad_input(strategy, baseline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(strategy, baseline, **kwargs)


# --- verdicts ----------------------------------------------------------------------------------------------------

def one_estimate(observed: float, low: float, high: float) -> BootstrapResult:
    return BootstrapResult({"R@10": Estimate(observed, low, high, 0.5, 0.0)}, draws=1000, seeds=3, confidence=0.95,
                           rng_seed=0, queries={"dress": 10})


def test_verdict_states_a_difference_only_when_the_interval_excludes_zero():
    assert verdict("semi-hard", "random", one_estimate(2.4, 1.1, 3.6)) == "semi-hard > random by +2.4 R@10 [+1.1, +3.6]"
    assert verdict("hard", "random", one_estimate(-5.0, -7.25, -2.5)) == "hard < random by -5.0 R@10 [-7.2, -2.5]"
    assert verdict("category", "random", one_estimate(0.6, -1.2, 2.3)) == (
        "no difference between category and random detected at this budget: Δ R@10 +0.6 [-1.2, +2.3]")


@pytest.mark.parametrize("low, high", [(0.0, 3.0), (-3.0, 0.0), (0.0, 0.0)])
def test_an_interval_touching_zero_is_not_a_difference(low, high):
    assert verdict("a", "b", one_estimate((low + high) / 2, low, high)).startswith("no difference between a and b")


# --- learning speed ----------------------------------------------------------------------------------------------

HISTORIES = {
    "random": [{0: 20.0, 2: 60.0, 4: 70.0, 6: 72.0}, {0: 20.0, 2: 65.0, 4: 71.0, 6: 68.0}],  # finals 72, 68: mean 70
    "semi-hard": [{0: 20.0, 2: 70.0, 4: 75.0}, {4: 74.0, 0: 20.0, 2: 69.0}],  # keys out of order on purpose
    "hard": [{0: 20.0, 2: 30.0}, {0: 20.0, 2: 31.0}],
}


def test_learning_speed_uses_the_baselines_mean_final_recall_as_one_threshold():
    speed = learning_speed(HISTORIES, "random")
    assert speed.threshold == 70.0 and speed.rule == "random's mean final R@10 over 2 seeds"
    assert speed.strategies["random"].epochs == (4, 4) and speed.strategies["random"].ratio == 1.0
    semi = speed.strategies["semi-hard"]
    assert (semi.epochs, semi.mean_epoch, semi.never, semi.ratio) == ((2, 4), 3.0, 0, 0.75)
    hard = speed.strategies["hard"]
    assert (hard.epochs, hard.mean_epoch, hard.never, hard.ratio) == ((None, None), None, 2, None)
    assert json.loads(json.dumps(speed.to_dict()))["strategies"]["hard"]["epochs"] == [None, None]


def test_learning_speed_with_a_given_threshold_and_seeds_that_never_reach_it():
    speed = learning_speed(HISTORIES, "random", threshold=71.0)
    assert speed.rule == "given" and speed.threshold == 71.0
    assert speed.strategies["random"].epochs == (6, 4) and speed.strategies["random"].mean_epoch == 5.0
    semi = speed.strategies["semi-hard"]
    assert (semi.epochs, semi.mean_epoch, semi.never, semi.ratio) == ((4, 4), 4.0, 0, 0.8)
    # A baseline reaching the threshold at epoch 0 (untrained) leaves the ratio undefined, not infinite.
    assert learning_speed(HISTORIES, "random", threshold=10.0).strategies["semi-hard"].ratio is None


def test_learning_speed_refuses_an_unknown_baseline_or_an_empty_history():
    with pytest.raises(ValueError, match="baseline 'in-batch'"):
        learning_speed(HISTORIES, "in-batch")
    with pytest.raises(ValueError, match="'hard' has a seed without an evaluated epoch"):
        learning_speed({**HISTORIES, "hard": [{}]}, "random")


# --- chance level ------------------------------------------------------------------------------------------------

def test_chance_recall_is_k_over_n_capped_and_averaged_over_categories():
    assert chance_recall(1000, ks=(1, 10, 50)) == {"R@1": 0.1, "R@10": 1.0, "R@50": 5.0, "headline": 3.0}
    by_category = chance_recall({"dress": 100, "shirt": 20}, ks=(10, 50))
    assert by_category == {"R@10": 30.0, "R@50": 75.0, "headline": 52.5}  # (10+50)/2 and (50+100)/2
    with pytest.raises(ValueError, match="at least one item"):
        chance_recall({"dress": 0})


def test_above_chance_needs_twice_chance_and_a_lower_bound_above_it():
    def r10(observed, low):
        return Estimate(observed, low, observed + 1.0, 1.0, 0.0)
    assert above_chance(r10(30.0, 20.0), 10.0)
    assert not above_chance(r10(20.0, 15.0), 10.0)  # not twice chance
    assert not above_chance(r10(25.0, 9.0), 10.0)  # lower bound within chance
    assert not above_chance(r10(100.0, 100.0), 100.0)  # a gallery of 10 items: every run is at chance
