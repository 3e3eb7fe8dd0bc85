"""One run's arithmetic against hand-computed values from small synthetic histories."""

from __future__ import annotations

import pytest

from cirlab.compare.analysis import RunSummary, evaluated, ledger_series, mean_per_step, summarise, total_seconds


def record(epoch: int, r10: float | None, *, r50: float = 90.0, steps: int = 10, loss: float | None = 0.1,
           sample_s: float | None = 0.002, step_s: float | None = 0.01, epoch_s: float | None = 2.0,
           eval_s: float = 0.5) -> dict:
    """One history record as the trainer writes it; ``r10=None`` makes an epoch without evaluation."""
    row: dict = {"epoch": epoch, "step": epoch * steps, "steps": 0 if epoch == 0 else steps}
    if epoch > 0:
        row.update({"train/loss": loss, "train/active_fraction": 0.5, "time/mean_sample_s": sample_s,
                    "time/mean_step_s": step_s, "time/epoch_s": epoch_s})
    if r10 is not None:
        row.update({"val/mean/R@1": r10 / 4, "val/mean/R@5": r10 / 2, "val/mean/R@10": r10, "val/mean/R@50": r50,
                    "val/headline": (r10 + r50) / 2, "time/eval_s": eval_s})
    return row


HISTORY = [record(0, 20.0, r50=60.0), record(1, 40.0, r50=70.0), record(2, None), record(3, 55.0, r50=85.0),
           record(4, 52.0, r50=84.0)]


def test_evaluated_skips_epochs_without_validation():
    assert [r["epoch"] for r in evaluated(HISTORY)] == [0, 1, 3, 4]


def test_mean_per_step_weights_each_epoch_by_its_steps():
    history = [record(0, 10.0), record(1, 10.0, steps=10, sample_s=0.01), record(2, 10.0, steps=30, sample_s=0.03),
               record(3, None, steps=20, sample_s=None)]
    # (10 * 0.01 + 30 * 0.03) / 40 = 1.0 / 40
    assert mean_per_step(history, "time/mean_sample_s") == pytest.approx(0.025)
    assert mean_per_step([record(0, 10.0)], "time/mean_sample_s") is None


def test_total_seconds_adds_the_epochs_and_the_evaluation_before_training():
    history = [record(0, 10.0, eval_s=0.5), record(1, 10.0, epoch_s=2.0), record(2, 10.0, epoch_s=3.25)]
    assert total_seconds(history) == pytest.approx(5.75)


def test_summarise_takes_final_from_the_last_evaluation_and_best_by_headline():
    summary = summarise("hard", HISTORY, description="triplet loss")
    assert summary.final == {1: 13.0, 5: 26.0, 10: 52.0, 50: 84.0}
    assert summary.final_headline == pytest.approx(68.0)
    # headlines: 40, 55, 70, 68 -> epoch 3 is best; its own values are reported, not each K's maximum
    assert summary.best_epoch == 3
    assert summary.best == {1: 13.75, 5: 27.5, 10: 55.0, 50: 85.0}
    assert summary.best_headline == pytest.approx(70.0)
    assert summary.epochs == 4 and summary.steps == 40
    assert summary.sample_s_per_step == pytest.approx(0.002)
    assert summary.total_s == pytest.approx(0.5 + 4 * 2.0)
    assert summary.series["recall10"] == [20.0, 40.0, None, 55.0, 52.0]
    assert summary.series["loss"] == [None, 0.1, 0.1, 0.1, 0.1]


def test_best_epoch_keeps_the_first_of_equal_headlines():
    history = [record(0, 10.0, r50=50.0), record(1, 30.0, r50=50.0), record(2, 30.0, r50=50.0)]
    assert summarise("x", history).best_epoch == 1


def test_ledger_series_turns_the_samplers_counters_into_shares_per_epoch():
    history = [record(0, 10.0), {**record(1, 20.0), "sampler/negatives": 200.0, "sampler/ledger_harder": 50.0,
                                 "sampler/ledger_semi_hard": 50.0, "sampler/ledger_easier": 100.0,
                                 "sampler/ledger_true_false_negatives": 4.0,
                                 "sampler/ledger_with_ground_truth": 200.0}]
    series = ledger_series(history)
    assert series["ledger/harder"] == [None, 0.25] and series["ledger/easier"] == [None, 0.5]
    assert series["ledger/true_false_negatives"] == [None, 0.02]
    assert ledger_series([record(0, 10.0), record(1, 20.0)]) == {}  # nothing mined: no ledger


def test_summary_round_trips_through_json_form():
    original = summarise("semi-hard", HISTORY)
    data = original.to_dict()
    assert data["final"]["R@10"] == 52.0
    assert RunSummary.from_dict(data) == original
