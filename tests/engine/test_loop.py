"""The engine with a toy objective: schedule, logs, best/last checkpoints, exact resume and failure modes."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cirlab.distributed import DistributedContext
from cirlab.engine import Engine, LoopSettings, ObjectiveBase, StepOutput, TrainingDivergedError, read_state
from cirlab.engine.optim import lr_factor, uniform_groups
from cirlab.engine.runlog import read_csv
from cirlab.errors import ConfigError
from cirlab.locking import LOCK_FILE, FolderLockedError
from tests.reliability.holders import LockHolder, lock_elsewhere


class Regression(ObjectiveBase):
    """Fit ``y = 2x`` with one weight; batches and a noise term come from the objective's own generator."""

    step_stats = ("noise", "sample_time_s")
    selection = "val/score"

    def __init__(self, poison_at: int | None = None, steps: int = 3) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(1, 1, bias=False)
        self.generator = torch.Generator().manual_seed(1)
        self.poison_at, self.calls, self.steps = poison_at, 0, steps

    def steps_per_epoch(self) -> int:
        return self.steps

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return uniform_groups([self.model], weight_decay)

    def train_modules(self) -> list[nn.Module]:
        return [self.model]

    def generators(self) -> dict[str, torch.Generator]:
        return {"data": self.generator}

    def batches(self, epoch: int):
        for _ in range(self.steps):
            x = torch.rand(4, 1, generator=self.generator)
            yield x, 2 * x

    def step(self, batch: Any) -> StepOutput:
        self.calls += 1
        x, y = batch
        loss = ((self.model(x) - y) ** 2).mean()
        if self.poison_at is not None and self.calls >= self.poison_at:
            loss = loss * float("nan")
        return StepOutput(loss, {"noise": torch.rand(1, generator=self.generator), "sample_time_s": 0.0})

    def evaluate(self, epoch: int) -> dict[str, float]:
        return {"val/score": -float((self.model.weight.detach() - 2).abs())}

    def save(self, folder: Path, record: dict[str, Any]) -> None:
        save_file({"weight": self.model.weight.detach().clone()}, str(folder / "weights.safetensors"))

    def load(self, folder: Path) -> None:
        self.model.weight.data.copy_(load_file(str(folder / "weights.safetensors"))["weight"])


def _settings(**overrides: Any) -> LoopSettings:
    values = {"epochs": 4, "lr": 0.1, "warmup_steps": 2, "evaluate_before": True, "tensorboard": False,
              "progress": False, "grad_clip": 1.0, **overrides}
    return LoopSettings(**values)


def _fit(run_dir: Path, objective: Regression | None = None, identity: dict | None = None, **overrides: Any):
    objective = objective or Regression()
    engine = Engine(objective, _settings(**overrides), run_dir, ctx=DistributedContext(), device=torch.device("cpu"),
                    identity=identity or {"task": "regression"}, config={"lr": 0.1})
    return objective, engine.fit()


def test_the_engine_trains_logs_and_checkpoints(tmp_path: Path) -> None:
    _, fit = _fit(tmp_path)
    assert fit.status == "complete" and fit.steps == 12 and [r["epoch"] for r in fit.history] == [0, 1, 2, 3, 4]
    assert fit.history[-1]["val/score"] > fit.history[0]["val/score"]
    steps = read_csv(tmp_path / "steps.csv")
    assert list(steps[0]) == ["epoch", "step", "lr", "loss", "noise", "sample_time_s", "grad_norm", "step_time_s"]
    assert [float(r["lr"]) for r in steps] == pytest.approx(
        [0.1 * lr_factor(s, total_steps=12, warmup_steps=2) for s in range(12)])
    epochs = read_csv(tmp_path / "epochs.csv")
    assert {"train/loss", "train/noise", "train/grad_norm", "time/mean_sample_s", "time/mean_step_s"} <= set(epochs[1])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["config"] == {"lr": 0.1}
    assert metrics["best"]["epoch"] == fit.best["epoch"] and metrics["best"]["metric"] == "val/score"
    assert metrics["best"]["value"] == max(r["val/score"] for r in metrics["history"])
    assert "cirlab" in metrics["provenance"]
    best = load_file(str(tmp_path / "best" / "weights.safetensors"))["weight"]
    assert float(-(best - 2).abs()) == pytest.approx(fit.best["value"])


def test_a_finished_run_keeps_no_optimiser_state(tmp_path: Path) -> None:
    _fit(tmp_path, stop_after_epochs=2)
    assert read_state(tmp_path)["optimizer"] is not None  # still needed to resume
    _fit(tmp_path, resume=True)
    state = read_state(tmp_path)
    assert state["epoch"] == 4 and state["optimizer"] is None and state["scheduler"] is not None


def test_a_stopped_and_resumed_run_repeats_an_uninterrupted_one(tmp_path: Path) -> None:
    _, whole = _fit(tmp_path / "whole")
    _, first = _fit(tmp_path / "parts", stop_after_epochs=1)
    assert first.status == "stopped"
    _, resumed = _fit(tmp_path / "parts", resume=True)
    assert resumed.resumed_from_epoch == 1
    for a, b in zip(whole.history, resumed.history):
        assert {k: v for k, v in a.items() if not k.startswith("time/")} == \
               {k: v for k, v in b.items() if not k.startswith("time/")}
    whole_steps = read_csv(tmp_path / "whole" / "steps.csv")
    parts_steps = read_csv(tmp_path / "parts" / "steps.csv")
    assert [(r["step"], r["loss"], r["noise"]) for r in whole_steps] == \
           [(r["step"], r["loss"], r["noise"]) for r in parts_steps]


def test_a_folder_with_a_run_needs_resume_and_the_same_identity(tmp_path: Path) -> None:
    _fit(tmp_path, stop_after_epochs=1)
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        _fit(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot resume with a different config \(task: checkpoint 'regression', "
                                          r"now 'other'\)"):
        _fit(tmp_path, identity={"task": "other"}, resume=True)


def test_a_nan_loss_stops_with_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingDivergedError) as info:
        _fit(tmp_path, Regression(poison_at=3))
    assert "\n" not in str(info.value) and "step 3" in str(info.value) and "learning rate" in str(info.value)


def test_a_nan_loss_found_at_a_later_read_back_names_its_step_and_stops_before_the_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TrainingDivergedError, match="the loss became nan at step 2 \\(epoch 1\\)"):
        _fit(tmp_path, Regression(poison_at=2, steps=5), sync_every=4)  # read back after step 4
    assert [r["step"] for r in read_csv(tmp_path / "steps.csv")] == ["1"]  # logged up to the diverged step
    assert read_state(tmp_path)["epoch"] == 0  # no checkpoint covers the diverged epoch


#: Tensor methods that make the host wait for the device (or read a tensor's value on the host).
HOST_READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__")


def test_a_step_never_reads_a_tensor_back_to_the_host(tmp_path: Path, monkeypatch) -> None:
    import cirlab.engine.loop as loop

    reads: list[str] = []
    inside = [False]

    def spy(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            if inside[0]:
                reads.append(name)
            return original(self, *args, **kwargs)
        return read

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, spy(name))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: reads.append("synchronize"))
    original_step = loop.Engine._train_step

    def step(self, *args):
        inside[0] = True
        try:
            return original_step(self, *args)
        finally:
            inside[0] = False

    monkeypatch.setattr(loop.Engine, "_train_step", step)
    _, fit = _fit(tmp_path, grad_clip=1.0)
    assert fit.steps == 12 and reads == []
    assert all(math.isfinite(float(r["grad_norm"])) for r in read_csv(tmp_path / "steps.csv"))


def test_statistics_are_read_back_every_sync_every_steps_and_at_the_end_of_an_epoch(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    from cirlab.engine.stats import StepRecords

    pending: list[int] = []
    original = StepRecords.read
    monkeypatch.setattr(StepRecords, "read", lambda self: (pending.append(len(self)), original(self))[1])
    _fit(tmp_path, Regression(steps=5), epochs=2, sync_every=2)
    assert pending == [2, 2, 1, 2, 2, 1]


def test_statistics_read_back_late_are_those_read_back_at_once(tmp_path: Path) -> None:
    _, at_once = _fit(tmp_path / "at-once", sync_every=1)
    _, late = _fit(tmp_path / "late", sync_every=50)
    assert [{k: v for k, v in r.items() if not k.startswith("time/")} for r in at_once.history] == \
           [{k: v for k, v in r.items() if not k.startswith("time/")} for r in late.history]
    columns = ("epoch", "step", "lr", "loss", "noise", "grad_norm")
    assert [[r[c] for c in columns] for r in read_csv(tmp_path / "at-once" / "steps.csv")] == \
           [[r[c] for c in columns] for r in read_csv(tmp_path / "late" / "steps.csv")]


def test_an_interrupted_run_logs_every_step_it_finished(tmp_path: Path, monkeypatch) -> None:
    import cirlab.engine.loop as loop

    original = loop.Engine._train_step

    def interrupted_at_step_5(self, batch):
        if self.step == 4:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(loop.Engine, "_train_step", interrupted_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, sync_every=50)
    assert [r["step"] for r in read_csv(tmp_path / "steps.csv")] == ["1", "2", "3", "4"]


def test_sync_every_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sync_every must be at least 1, got 0"):
        _fit(tmp_path, sync_every=0)


def test_the_engine_trains_with_freed_memory_kept_for_reuse(tmp_path: Path, monkeypatch) -> None:
    import contextlib

    import cirlab.engine.loop as loop

    entered: list[str] = []

    @contextlib.contextmanager
    def spy(device):
        entered.append(device.type)
        yield True

    monkeypatch.setattr(loop, "reuse_freed_memory", spy)
    _fit(tmp_path)
    assert entered == ["cpu"]


def test_the_log_is_on_disk_before_the_checkpoint_that_covers_it(tmp_path: Path, monkeypatch) -> None:
    seen: list[int] = []
    import cirlab.engine.loop as loop

    original = loop.write_checkpoint_folder

    def spy(folder, save_model, state=None):
        if state is not None:  # a last/ checkpoint: every step it covers is already in steps.csv
            seen.append(len(read_csv(tmp_path / "steps.csv")))
            assert seen[-1] == state["step"]
        return original(folder, save_model, state)

    monkeypatch.setattr(loop, "write_checkpoint_folder", spy)
    _fit(tmp_path)
    assert seen == [0, 3, 6, 9, 12]


# ---------------------------------------------------------------- one writer, nothing overwritten
def test_the_run_folder_is_locked_from_start_to_end_of_fit(tmp_path: Path) -> None:
    seen: list[str] = []
    objective = Regression()
    engine = Engine(objective, _settings(epochs=1), tmp_path, ctx=DistributedContext(), device=torch.device("cpu"),
                    identity={"task": "regression"})
    seen.append(lock_elsewhere(tmp_path))  # built: the folder is already locked
    engine.fit(lambda record: seen.append(lock_elsewhere(tmp_path)) if record["epoch"] == 1 else None)
    assert len(seen) == 2 and all(s.endswith("is writing here; wait for it or choose another folder") for s in seen)
    assert f"pid {os.getpid()} " in seen[0]
    assert lock_elsewhere(tmp_path) == "free" and not (tmp_path / LOCK_FILE).exists()


def test_a_run_folder_another_process_writes_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with LockHolder(tmp_path) as holder:
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid} ") as info:
            _fit(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]  # the holder's: nothing was written
    assert "\n" not in str(info.value)


def test_an_engine_that_cannot_start_gives_the_lock_back(tmp_path: Path) -> None:
    _fit(tmp_path, stop_after_epochs=1)
    with pytest.raises(ConfigError, match="cannot resume with a different config"):
        _fit(tmp_path, identity={"task": "other"}, resume=True)
    assert lock_elsewhere(tmp_path) == "free"


def test_a_run_whose_last_checkpoint_is_gone_is_refused_not_retrained(tmp_path: Path) -> None:
    _fit(tmp_path)
    best = (tmp_path / "best" / "weights.safetensors").read_bytes()
    shutil.rmtree(tmp_path / "last")
    for resume in (True, False):
        with pytest.raises(ConfigError) as info:
            _fit(tmp_path, resume=resume)
        assert str(info.value) == (f"{tmp_path}: holds a training run (metrics.json: complete, 4 epochs) but no "
                                   f"resumable checkpoint (last/trainer_state.pt is missing); training again would "
                                   f"overwrite it, so delete the folder or choose another output folder")
    assert (tmp_path / "best" / "weights.safetensors").read_bytes() == best
    (tmp_path / "metrics.json").unlink()
    with pytest.raises(ConfigError, match=r"holds a training run \(best/\) but no resumable checkpoint"):
        _fit(tmp_path, resume=True)
    assert (tmp_path / "best" / "weights.safetensors").read_bytes() == best


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path: Path, monkeypatch, caplog) -> None:
    import cirlab.engine.loop as loop

    original = loop.write_checkpoint_folder

    def killed_at_first_last(folder, save_model, state=None):
        if state is not None:
            raise KeyboardInterrupt  # stands for a kill: metrics.json and best/ of epoch 0 exist, last/ does not
        return original(folder, save_model, state)

    monkeypatch.setattr(loop, "write_checkpoint_folder", killed_at_first_last)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "parts")
    monkeypatch.setattr(loop, "write_checkpoint_folder", original)
    assert (tmp_path / "parts" / "best").is_dir() and not (tmp_path / "parts" / "last").exists()
    with caplog.at_level(logging.INFO, logger="cirlab.engine"):
        _, resumed = _fit(tmp_path / "parts", resume=True)
    assert "stopped before its first checkpoint; starting it again" in caplog.text
    _, whole = _fit(tmp_path / "whole")
    assert [r["val/score"] for r in resumed.history] == [r["val/score"] for r in whole.history]


def test_temporaries_of_killed_writes_are_removed(tmp_path: Path) -> None:
    _fit(tmp_path, stop_after_epochs=1)
    (tmp_path / ".metrics.json.k2l4_9xz.tmp").write_text("{half")
    _fit(tmp_path, resume=True)
    assert not list(tmp_path.glob(".*.tmp"))
