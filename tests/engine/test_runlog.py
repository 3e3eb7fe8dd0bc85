"""The run log: steps.csv is cut back on resume, epochs.csv holds the union of the records' keys, and
sync puts every logged row on disk."""

from __future__ import annotations

import json

from cirlab.engine.runlog import RunLog, read_csv

STEP_COLUMNS = ("epoch", "step", "lr", "loss", "active_fraction", "mean_d_pos", "mean_d_neg", "sample_time_s",
                "step_time_s")


def step_row(step: int) -> dict:
    return {"epoch": 1 + (step - 1) // 4, "step": step, "lr": 0.1, "loss": 1.0 / step, "active_fraction": 0.5,
            "mean_d_pos": 0.2, "mean_d_neg": float("nan"), "sample_time_s": 0.01, "step_time_s": 0.02}


def test_resume_cuts_steps_back_to_the_checkpoint(tmp_path):
    recorder = RunLog(tmp_path, STEP_COLUMNS, tensorboard=False)
    for step in range(1, 7):
        recorder.log_step(step_row(step))
    recorder.close()
    recorder = RunLog(tmp_path, STEP_COLUMNS, tensorboard=False, resume_step=4)
    recorder.log_step(step_row(5))
    recorder.close()
    rows = read_csv(tmp_path / "steps.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert list(rows[0]) == list(STEP_COLUMNS)
    assert rows[0]["mean_d_neg"] == ""  # a statistic the loss did not report stays empty
    assert float(rows[1]["loss"]) == 0.5


def test_fresh_recorder_starts_a_new_steps_file(tmp_path):
    (tmp_path / "steps.csv").write_text("epoch,step\n1,1\n")
    RunLog(tmp_path, STEP_COLUMNS, tensorboard=False).close()
    assert read_csv(tmp_path / "steps.csv") == []


def test_summary_files(tmp_path):
    recorder = RunLog(tmp_path, STEP_COLUMNS, tensorboard=False)
    history = [{"epoch": 0, "val/headline": 10.0}, {"epoch": 1, "train/loss": 0.5, "sampler/queries": 8.0},
               {"epoch": 2, "train/loss": 0.4, "val/headline": 20.0}]
    recorder.write_summary(history, {"status": "complete", "best": {"epoch": 2}})
    recorder.close()
    rows = read_csv(tmp_path / "epochs.csv")
    assert list(rows[0]) == ["epoch", "train/loss", "val/headline", "sampler/queries"]
    assert [r["val/headline"] for r in rows] == ["10.0", "", "20.0"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["history"] == history and metrics["format_version"] == 2


def test_sync_puts_logged_steps_on_disk_before_close(tmp_path):
    log = RunLog(tmp_path, STEP_COLUMNS, tensorboard=False)
    for step in range(1, 4):
        log.log_step(step_row(step))
    log.sync()
    # another reader (a resumed run after a kill) sees every row logged before the sync
    assert [int(r["step"]) for r in read_csv(tmp_path / "steps.csv")] == [1, 2, 3]
    log.close()
