"""The CSV step and epoch logs, and their truncation on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from cirlab.encoder_training.runlog import RunLog, read_rows


def _fill(out: Path, steps: int, epochs: int) -> None:
    log = RunLog(out, tensorboard=False)
    for step in range(1, steps + 1):
        log.step({"epoch": (step - 1) // 2 + 1, "step": step, "loss": 1.0 / step, "samples_per_s": 10.0})
    for epoch in range(1, epochs + 1):
        log.epoch({"epoch": epoch, "step": epoch * 2, "loss": 0.5, "R@1": 10.0 * epoch})
    log.close()


def test_rows_are_written_with_one_header(tmp_path: Path) -> None:
    _fill(tmp_path, steps=4, epochs=2)
    rows = read_rows(tmp_path / "steps.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    assert float(rows[2]["loss"]) == pytest.approx(1.0 / 3, rel=1e-8)
    assert [r["R@1"] for r in read_rows(tmp_path / "epochs.csv")] == ["10", "20"]
    assert (tmp_path / "steps.csv").read_text().count("epoch,step") == 1


def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path: Path) -> None:
    _fill(tmp_path, steps=5, epochs=2)  # the run died during epoch 3, checkpoint at step 4 / epoch 2
    log = RunLog(tmp_path, tensorboard=False, resume_step=2, resume_epoch=1)
    log.step({"epoch": 2, "step": 3, "loss": 0.25, "samples_per_s": 9.0})
    log.close()
    assert [r["step"] for r in read_rows(tmp_path / "steps.csv")] == ["1", "2", "3"]
    assert read_rows(tmp_path / "steps.csv")[-1]["loss"] == "0.25"
    assert [r["epoch"] for r in read_rows(tmp_path / "epochs.csv")] == ["1"]


def test_a_disabled_log_writes_nothing(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "rank1", enabled=False)
    log.step({"epoch": 1, "step": 1, "loss": 1.0})
    log.close()
    assert not (tmp_path / "rank1").exists()
