"""The comparison arithmetic against hand-computed values from small synthetic histories."""

from __future__ import annotations

import pytest

from cirlab.compare.analysis import (
    RunSummary,
    default_threshold,
    evaluated,
    first_epoch_reaching,
    learning_pace,
    mean_per_step,
    summarise,
    total_seconds,
    verdict,
)


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


def test_first_epoch_reaching_skips_unevaluated_epochs_and_counts_equality():
    assert first_epoch_reaching(HISTORY, 40.0) == 1  # equal counts as reached
    assert first_epoch_reaching(HISTORY, 41.0) == 3  # epoch 2 was not evaluated
    assert first_epoch_reaching(HISTORY, 20.0) == 0  # the untrained combiner may already be there
    assert first_epoch_reaching(HISTORY, 55.1) is None
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
    summary = summarise("hard", HISTORY, threshold=50.0, description="triplet loss")
    assert summary.final == {1: 13.0, 5: 26.0, 10: 52.0, 50: 84.0}
    assert summary.final_headline == pytest.approx(68.0)
    # headlines: 40, 55, 70, 68 -> epoch 3 is best; its own values are reported, not each K's maximum
    assert summary.best_epoch == 3
    assert summary.best == {1: 13.75, 5: 27.5, 10: 55.0, 50: 85.0}
    assert summary.best_headline == pytest.approx(70.0)
    assert summary.threshold_epoch == 3
    assert summary.epochs == 4 and summary.steps == 40
    assert summary.sample_s_per_step == pytest.approx(0.002)
    assert summary.total_s == pytest.approx(0.5 + 4 * 2.0)
    assert summary.series["recall10"] == [20.0, 40.0, None, 55.0, 52.0]
    assert summary.series["loss"] == [None, 0.1, 0.1, 0.1, 0.1]


def test_best_epoch_keeps_the_first_of_equal_headlines():
    history = [record(0, 10.0, r50=50.0), record(1, 30.0, r50=50.0), record(2, 30.0, r50=50.0)]
    assert summarise("x", history, 0.0).best_epoch == 1


def test_default_threshold_is_a_share_of_the_gain_over_the_baseline():
    histories = {"a": [record(0, 20.0), record(1, 70.0)], "b": [record(0, 20.0), record(1, 80.0), record(2, 60.0)]}
    # best final R@10 is a's 70 (b ends at 60); 50 + 0.9 * (70 - 50) = 68
    assert default_threshold(histories, baseline=50.0) == pytest.approx(68.0)
    assert default_threshold(histories, baseline=50.0, fraction=0.5) == pytest.approx(60.0)
    # nothing learned: the threshold is the best final value itself
    assert default_threshold(histories, baseline=75.0) == pytest.approx(70.0)
    with pytest.raises(ValueError):
        default_threshold({"a": [record(1, None)]}, baseline=0.0)


@pytest.mark.parametrize(("mine", "theirs", "expected"), [
    (2, 5, "faster"), (5, 2, "slower"), (3, 3, "same"), (4, None, "faster"), (None, 4, "slower"),
    (None, None, "neither"),
])
def test_learning_pace(mine, theirs, expected):
    assert learning_pace(mine, theirs) == expected


def summary(name: str, *, best: float, final10: float, reached: int | None) -> RunSummary:
    return RunSummary(name=name, epochs=5, steps=50, final={1: 1.0, 5: 5.0, 10: final10, 50: 90.0},
                      final_headline=best, best={1: 1.0, 5: 5.0, 10: final10, 50: 90.0}, best_headline=best,
                      best_epoch=4, threshold_epoch=reached, sample_s_per_step=0.001, step_s=0.01, total_s=10.0)


def test_verdict_states_faster_and_better_with_the_numbers():
    text = verdict(summary("hard", best=62.3, final10=50.0, reached=2), summary("random", best=60.0, final10=47.5,
                                                                                reached=5), threshold=45.0)
    assert text == ("**hard** learned faster than random (first epoch with Recall@10 ≥ 45.0: 2 vs 5) and better "
                    "(best headline 62.3 vs 60.0, +2.3); final Recall@10 50.0 vs 47.5 (+2.5).")


def test_verdict_states_slower_worse_on_par_and_neither():
    slower = verdict(summary("hard", best=55.0, final10=40.0, reached=None),
                     summary("random", best=60.0, final10=47.5, reached=5), threshold=45.0)
    assert slower.startswith("**hard** learned slower than random (first epoch with Recall@10 ≥ 45.0: never vs 5) "
                             "and worse (best headline 55.0 vs 60.0, -5.0)")
    on_par = verdict(summary("category", best=60.4, final10=47.6, reached=5),
                     summary("random", best=60.0, final10=47.5, reached=5), threshold=45.0)
    assert "learned at the same pace as random (first epoch with Recall@10 ≥ 45.0: 5 vs 5) and as well " \
           "(best headline 60.4 vs 60.0, on par)" in on_par
    assert on_par.endswith("final Recall@10 47.6 vs 47.5.")  # within 0.5 points: no difference written
    neither = verdict(summary("hard", best=50.0, final10=40.0, reached=None),
                      summary("random", best=49.0, final10=41.0, reached=None), threshold=45.0)
    assert neither == ("**hard**, like random, never reached Recall@10 ≥ 45.0; it learned better "
                       "(best headline 50.0 vs 49.0, +1.0); final Recall@10 40.0 vs 41.0 (-1.0).")


def test_summary_round_trips_through_json_form():
    original = summarise("semi-hard", HISTORY, threshold=41.0)
    data = original.to_dict()
    assert data["final"]["R@10"] == 52.0
    assert RunSummary.from_dict(data) == original
