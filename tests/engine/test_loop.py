"""The engine with a toy objective: schedule, logs, best/last checkpoints, exact resume and failure modes."""

from __future__ import annotations

import json
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
