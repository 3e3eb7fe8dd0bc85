"""A comparison assembled from hand-made run folders: every number against a hand computation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cirlab.compare.assemble import load_run
from cirlab.errors import CacheMismatchError
from cirlab.evaluation.ranks import read_ranks, write_ranks
from tests.compare.results import QUERY_ACCOUNTING, made_up_entries, made_up_result


def test_selected_metrics_are_the_mean_and_sd_over_seeds_of_the_test_ranks(tmp_path):
    result = made_up_result(tmp_path)
    assert (result.reported, result.selection) == ("test", "val")
    # random: seed 0 hits dress 10/40, shirt 9/30 -> 27.5 at every K; seed 1: 11/40, 9/30 -> 28.75
    random = result.strategies["random"].selected
    for metric in ("R@1", "R@10", "R@50", "headline"):
        assert random[metric].values == pytest.approx((27.5, 28.75))
        assert random[metric].mean == pytest.approx(28.125)
        assert random[metric].std == pytest.approx(np.std([27.5, 28.75], ddof=1))
    assert result.strategies["hard"].selected["R@10"].mean == pytest.approx((77.5 + 78.75) / 2)
    # final validation epoch, from the histories: random's last R@10 are 46 and 47
    assert result.strategies["random"].final["R@10"].values == (46.0, 47.0)
    assert result.strategies["random"].mining_ms.mean == pytest.approx(4.0)


def test_differences_verdicts_chance_and_speed(tmp_path):
    result = made_up_result(tmp_path)
    hard, category = result.strategies["hard"], result.strategies["category"]
    assert hard.versus_baseline.estimates["R@10"].observed == pytest.approx(50.0)
    assert hard.versus_baseline.estimates["R@10"].excludes_zero and hard.verdict.startswith("hard > random by +50.0")
    # category: +1.67 on seed 0, -1.25 on seed 1: no difference detected, the interval is given instead
    assert category.versus_baseline.estimates["R@10"].observed == pytest.approx((5 / 3 - 1.25) / 2)
    assert category.verdict.startswith("no difference between category and random detected at this budget")
    assert result.strategies["random"].versus_baseline is None and result.strategies["random"].verdict is None
    # chance: R@10 of a random ranking over galleries of 100 and 80 items
    assert result.chance["R@10"] == pytest.approx((10 + 12.5) / 2)
    assert all(s.above_chance for s in result.strategies.values())
    # one threshold: random's mean final validation R@10, (46 + 47) / 2
    speed = result.speed
    assert speed.threshold == pytest.approx(46.5) and speed.baseline == "random"
    assert speed.strategies["random"].epochs == (None, 3) and speed.strategies["hard"].epochs == (2, 2)
    assert speed.strategies["hard"].ratio == pytest.approx(2 / 3) and speed.strategies["category"].never == 2
    assert any("category: 2 of 2 seeds never reached" in note for note in result.notes)
    assert result.queries == QUERY_ACCOUNTING


def test_a_given_threshold_is_used_for_every_strategy(tmp_path):
    speed = made_up_result(tmp_path, threshold=40.0).speed
    assert speed.rule == "given" and speed.strategies["category"].epochs == (3, 3)


def test_the_best_strategy_against_the_seed_system(tmp_path):
    result = made_up_result(tmp_path, contrastive=True, seed_system=True)
    versus = result.versus_seed_system
    assert versus.best == "hard"  # reference runs are never the best strategy
    # hard 77.5 / 78.75 against the seed system's 15.83 / 17.5 (dress 6/40, shirt 5/30 and 6/30)
    expected = ((77.5 - (15 + 50 / 3) / 2) + (78.75 - (15 + 20) / 2)) / 2
    assert versus.difference.estimates["R@10"].observed == pytest.approx(expected)
    assert versus.seed_final_r10 == pytest.approx(31.5) and versus.passes_at == [1, 1] and versus.mean_epoch == 1.0
    assert result.strategies["contrastive-in-batch"].mining_ms is None


def test_last_epoch_selection_on_validation(tmp_path):
    entries = made_up_entries(tmp_path)
    run = load_run(entries[0], selection="last", reported="val", val_split="val")
    # the last validation's ranks (epoch 3): dress 10/40, shirt 10/30 hits
    assert {c: int((r.ranks < 10).sum()) for c, r in run.reported.items()} == {"dress": 10, "shirt": 10}


def test_a_run_without_the_reported_evaluation_is_a_one_line_error(tmp_path):
    entries = made_up_entries(tmp_path)
    path = tmp_path / "runs" / "random" / "seed-0" / "ranks.npz"
    write_ranks(path, {name: ranks for name, ranks in read_ranks(path).items() if name != "test/best"})
    with pytest.raises(CacheMismatchError, match=r"seed-0/ranks.npz: no ranks of the test/best evaluation") as info:
        load_run(entries[0], selection="val", reported="test", val_split="val")
    assert "\n" not in str(info.value)
    (tmp_path / "runs" / "random" / "seed-0" / "metrics.json").write_text("{", encoding="utf-8")
    with pytest.raises(CacheMismatchError, match="unreadable run metrics"):
        load_run(entries[0], selection="val", reported="test", val_split="val")


def test_the_result_is_plain_json(tmp_path):
    data = json.loads(json.dumps(made_up_result(tmp_path, contrastive=True, seed_system=True).to_dict()))
    assert data["strategies"]["hard"]["selected"]["R@10"]["seeds"] == 2
    assert data["strategies"]["hard"]["versus_baseline"]["metrics"]["R@10"]["observed"] == pytest.approx(50.0)
    assert data["learning_speed"]["threshold"] == pytest.approx(46.5)
    assert data["versus_seed_system"]["best"] == "hard" and data["queries"] == QUERY_ACCOUNTING
