"""``SAMPLER@LOSS`` strategies: any sampler with any loss in one comparison, and a report that names each loss."""

from __future__ import annotations

import pytest

from cirlab.compare.report import render_report
from cirlab.compare.runner import compare, plan_runs, split_strategy
from cirlab.errors import ConfigError
from cirlab.training import load_config
from tests.compare.datasets import make_comparison_data
from tests.compare.results import made_up_result


def test_split_strategy() -> None:
    assert split_strategy("hard@hn-nce") == ("hard", "hn-nce")
    assert split_strategy("in-batch") == ("in-batch", None)
    assert split_strategy("hard@") == ("hard", "")


def test_a_strategy_may_name_its_loss(tmp_path) -> None:
    base = load_config("synthetic", [("features", str(tmp_path / "features")), ("out", str(tmp_path)),
                                     ("seeds", 1), ("loss_options.margin", 0.1)])
    plans = {p.strategy: p for p in plan_runs(base, ["random", "hard@contrastive", "in-batch@hn-nce",
                                                     "semi-hard@triplet"], tmp_path)}
    assert plans["random"].config.loss == "triplet" and plans["random"].config.loss_options["margin"] == 0.1
    hard = plans["hard@contrastive"]
    assert (hard.config.loss, hard.config.loss_options, hard.config.negatives) == ("contrastive", {}, "hard")
    assert hard.description == "contrastive loss (its default options), hard negatives (k=16)"
    assert hard.run_dir == tmp_path / "runs" / "hard@contrastive" / "seed-0"
    assert (hard.entry().loss, hard.entry().negatives, hard.mines) == ("contrastive", "hard", True)
    in_batch = plans["in-batch@hn-nce"]
    assert (in_batch.config.loss, in_batch.config.negatives, in_batch.mines) == ("hn-nce", "in-batch", False)
    same = plans["semi-hard@triplet"].config  # the config's own loss keeps the config's options
    assert same.loss == "triplet" and same.loss_options == base.loss_options
    assert plans["semi-hard@triplet"].description == "triplet loss, semi-hard negatives (k=16)"


@pytest.mark.parametrize(("strategies", "message"), [
    (["random", "hard@arcface"], r"unknown losses in strategies \['hard@arcface'\] \(SAMPLER@LOSS\); known losses: "
                                 r"contrastive, hn-nce, triplet"),
    (["hard@"], r"unknown losses in strategies \['hard@'\]"),
    (["nearest@contrastive"], r"unknown strategies \['nearest@contrastive'\]"),
])
def test_unknown_losses_in_strategies_are_refused(tmp_path, strategies, message) -> None:
    base = load_config("synthetic", [("features", str(tmp_path / "features")), ("out", str(tmp_path))])
    with pytest.raises(ConfigError, match=message):
        plan_runs(base, strategies, tmp_path)


def test_the_results_table_names_the_loss_when_runs_differ_in_it(tmp_path) -> None:
    result = made_up_result(tmp_path)
    assert "| strategy | loss |" not in render_report(result)  # one loss: the set-up table names it
    result.strategies["hard"].loss = "hn-nce"
    text = render_report(result)
    assert "| strategy | loss | R@1 |" in text
    assert "| hard | hn-nce | 78.1 ± 0.9 |" in text and "| random | triplet | 28.1 ± 0.9 |" in text
    assert "| *untrained sum* | | 5.0 |" in text


@pytest.mark.slow
def test_a_comparison_trains_a_sampler_with_each_loss(tmp_path) -> None:
    features, _ = make_comparison_data(tmp_path / "data", with_images=False)
    overrides = {"batch_size": 32, "num_negatives": 4, "tensorboard": False, "lr": 3e-3,
                 "combiner_options": {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.0}}
    result = compare("synthetic", ["hard", "hard@hn-nce", "in-batch@contrastive"], tmp_path / "out", seeds=1,
                     epochs=1, features=features, overrides=overrides, baseline="hard", queries=0)
    assert {name: s.loss for name, s in result.strategies.items()} == {
        "hard": "triplet", "hard@hn-nce": "hn-nce", "in-batch@contrastive": "contrastive"}
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "| hard@hn-nce | hn-nce |" in report and "hn-nce loss (its default options), hard negatives" in report
    assert "--strategies hard,hard@hn-nce,in-batch@contrastive" in report  # the command that repeats it
