"""Demo options: the tiny preset, overrides and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cirlab.demo.options import CIRR_DEMO, DEFAULT_STRATEGIES, DemoOptions
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


def test_the_fashioniq_demo_is_the_class_defaults():
    assert DemoOptions.for_dataset("fashioniq") == DemoOptions()
    assert DemoOptions.for_dataset("fashioniq", tiny=True, epochs=3) == DemoOptions.tiny(epochs=3)


def test_the_cirr_demo_is_shorter_and_trains_on_cirrs_one_caption_form():
    cirr = DemoOptions.for_dataset("cirr")
    assert cirr.dataset == "cirr" and cirr.images_per_category == CIRR_DEMO["images_per_category"]
    assert cirr.strategies == ("random", "semi-hard", "hard") and "category" not in cirr.strategies
    assert cirr.seeds == 2 and not cirr.include_contrastive and not cirr.include_seed
    assert ("caption_forms", [0]) in cirr.train_overrides
    tiny = DemoOptions.for_dataset("cirr", tiny=True, seeds=3)
    assert tiny.preset == "tiny" and tiny.images_per_category is None and tiny.seeds == 3
    assert tiny.train_overrides == (*DemoOptions.tiny().train_overrides, ("caption_forms", [0]))


def test_an_unknown_data_set_is_refused():
    with pytest.raises(ConfigError, match=r"unknown demo data set 'coco'; use one of \['fashioniq', 'cirr'\]"):
        DemoOptions.for_dataset("coco")


def test_the_ambiguity_level_reaches_the_benchmark_and_only_a_raised_one_changes_the_data_stage(tmp_path):
    from cirlab.demo.pipeline import build_stages

    default = build_stages(DemoOptions.tiny(out=tmp_path), {})[0].options
    high = build_stages(DemoOptions.tiny(out=tmp_path, ambiguity="high"), {})[0].options
    assert "ambiguity" not in default and high["ambiguity"] == "high"
    assert {k: v for k, v in high.items() if k != "ambiguity"} == default
