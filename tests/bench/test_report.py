"""Figures, results and the report's table and JSON."""

from __future__ import annotations

import json

import pytest

from cirlab.bench.report import BenchReport, BenchResult, Figure, _number
from cirlab.bench.timing import Stat


def _report() -> BenchReport:
    result = BenchResult("train", "a title", settings={"batch": 4, "sizes": [1, 2]})
    result.add(Figure.from_stat("speedup", Stat(2.0, 1.5, 2.5), "x", "ratio", "what", baseline="the baseline"))
    result.add(Figure("rate", 123.456, "items/s", "absolute", "a rate"))
    result.add(Figure("count", 0, "count", "exact", "a check"))
    result.notes.append("a note")
    return BenchReport(quick=True, device="cpu", machine={"cpus": 2, "torch_threads": 2}, results=[result])


def test_a_figure_kind_must_be_known_and_a_ratio_must_name_its_baseline() -> None:
    with pytest.raises(ValueError, match="kind"):
        Figure("x", 1.0, "x", "relative", "bad kind")
    with pytest.raises(ValueError, match="baseline"):
        Figure("x", 1.0, "x", "ratio", "no baseline")


def test_figure_names_are_unique_within_a_benchmark() -> None:
    result = BenchResult("b", "t")
    result.add(Figure("x", 1.0, "s", "absolute", "d"))
    with pytest.raises(ValueError, match="already"):
        result.add(Figure("x", 2.0, "s", "absolute", "d"))


def test_json_round_trip_keeps_every_figure(tmp_path) -> None:
    report = _report()
    path = tmp_path / "out.json"
    report.write_json(path)
    data = json.loads(path.read_text())
    assert data["quick"] is True and data["device"] == "cpu"
    figures = data["benchmarks"][0]["figures"]
    assert set(figures) == {"speedup", "rate", "count"}
    assert figures["speedup"] == {"value": 2.0, "unit": "x", "kind": "ratio", "description": "what",
                                  "baseline": "the baseline", "low": 1.5, "high": 2.5}
    assert set(report.figures()) == {"train.speedup", "train.rate", "train.count"}


def test_table_lists_ratios_first_with_spread_and_notes() -> None:
    table = _report().format_table()
    lines = table.splitlines()
    body = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in {"speedup", "rate",
                                                                                                  "count"}]
    assert body == ["speedup", "rate", "count"]
    assert "1.50-2.50" in table and "the baseline" in table
    assert "settings: batch=4, sizes=1/2" in table
    assert "note: a note" in table


@pytest.mark.parametrize(("value", "text"), [(1234.5, "1234"), (12.345, "12.3"), (1.2345, "1.23"), (0.12345, "0.123"),
                                            (0.0, "0.000"), (1.5e-5, "1.50e-05"), (2.5e7, "2.50e+07")])
def test_numbers_are_compact(value: float, text: str) -> None:
    assert _number(value) == text
