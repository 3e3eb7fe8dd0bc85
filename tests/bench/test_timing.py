"""Timing helpers: interleaved rounds, paired ratios, medians and percentiles."""

from __future__ import annotations

import pytest

from cirlab.bench.timing import Stat, Timing, latency_percentiles, round_ratio, time_rounds


def test_stat_is_median_min_max() -> None:
    stat = Stat.of([3.0, 1.0, 2.0, 10.0])
    assert (stat.value, stat.low, stat.high) == (2.5, 1.0, 10.0)


def test_stat_map_of_a_decreasing_function_swaps_the_spread() -> None:
    rate = Stat(2.0, 1.0, 4.0).map(lambda seconds: 8.0 / seconds)
    assert (rate.value, rate.low, rate.high) == (4.0, 2.0, 8.0)


def test_stat_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        Stat.of([])


def test_time_rounds_interleaves_and_drops_warmup() -> None:
    calls: list[str] = []
    timings = time_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert len(timings["a"].samples) == len(timings["b"].samples) == 3
    assert all(t >= 0 for t in timings["a"].samples)


def test_round_ratio_pairs_samples_of_the_same_round() -> None:
    ratio = round_ratio(Timing((2.0, 9.0, 3.0)), Timing((1.0, 3.0, 3.0)))
    # per round: 2, 3, 1 -> median 2, spread 1..3 (not the ratio of the medians, 3 / 3 = 1)
    assert (ratio.value, ratio.low, ratio.high) == (2.0, 1.0, 3.0)


def test_round_ratio_refuses_unpaired_timings() -> None:
    with pytest.raises(ValueError):
        round_ratio(Timing((1.0, 2.0)), Timing((1.0,)))


def test_latency_percentiles_in_milliseconds() -> None:
    p50, p99 = latency_percentiles([i / 1000 for i in range(1, 102)])  # 1..101 ms
    assert p50 == pytest.approx(51.0)
    assert p99 == pytest.approx(100.0)
