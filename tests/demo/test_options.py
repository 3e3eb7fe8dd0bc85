"""Demo options: the tiny preset, overrides and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cirlab.demo.options import DEFAULT_STRATEGIES, DemoOptions
from cirlab.errors import ConfigError


def test_defaults_compare_every_strategy_on_the_default_benchmark():
    options = DemoOptions()
    assert options.preset == "default" and options.strategies == DEFAULT_STRATEGIES
    assert options.out == Path("demo-output") and options.include_contrastive


def test_tiny_is_small_and_takes_overrides():
    tiny = DemoOptions.tiny(out="/tmp/x", epochs=3)
    assert tiny.preset == "tiny" and tiny.strategies == ("random", "hard") and tiny.epochs == 3
    assert tiny.out == Path("/tmp/x") and not tiny.include_contrastive
    assert ("negatives_options.near_duplicate_threshold", None) in tiny.train_overrides


def test_none_values_keep_the_current_ones_and_lists_become_tuples():
    options = DemoOptions().with_overrides(epochs=None, strategies=["random", "hard"])
    assert options.epochs == DemoOptions().epochs and options.strategies == ("random", "hard")


@pytest.mark.parametrize(("changes", "message"), [
    ({"epochs": 0}, "demo epochs must be at least 1"),
    ({"pretrain_batch_size": 1}, "pretrain batch size must be at least 2"),
    ({"strategies": []}, "at least one strategy"),
    ({"workers": -1}, "must not be negative"),
    ({"colour": "red"}, r"unknown demo options \['colour'\]"),
])
def test_bad_options_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        DemoOptions().with_overrides(**changes)
