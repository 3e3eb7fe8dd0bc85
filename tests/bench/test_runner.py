"""Choosing benchmarks by name."""

from __future__ import annotations

import pytest

from cirlab.bench.runner import benchmark_names, select
from cirlab.errors import ConfigError


def test_names_in_run_order() -> None:
    assert benchmark_names() == ["train", "mining", "pml", "naive", "extract", "cache", "eval", "search",
                                 "compare"]


def test_select_keeps_run_order_and_drops_repeats() -> None:
    assert [b.name for b in select(["search", "train", " eval", "train"])] == ["train", "eval", "search"]
    assert [b.name for b in select(None)] == benchmark_names()


def test_unknown_or_empty_names_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'; known:"):
        select(["train", "nope"])
    with pytest.raises(ConfigError, match="names no benchmark"):
        select([" ", ""])
