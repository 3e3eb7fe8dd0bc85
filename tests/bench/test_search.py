"""The search benchmark's latency bookkeeping."""

from __future__ import annotations

from cirlab.bench.search import interleaved_latencies, p50_ratio


def test_interleaved_latencies_time_every_item_once_per_work_after_the_warmup() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}
    seconds = interleaved_latencies({"a": seen["a"].append, "b": seen["b"].append}, list(range(10)), rounds=3,
                                    warmup=2)
    assert seen["a"] == [0, 1, *range(2, 10)] and seen["b"] == seen["a"]
    assert [len(chunk) for chunk in seconds["a"]] == [3, 3, 2]
    assert len(seconds["b"]) == 3


def test_p50_ratio_is_taken_round_by_round() -> None:
    seconds = {"x": [[2.0, 2.0, 9.0], [1.0, 1.0, 1.0]], "y": [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]}
    ratio = p50_ratio(seconds, "x", "y")
    assert (ratio.value, ratio.low, ratio.high) == (1.5, 1.0, 2.0)
