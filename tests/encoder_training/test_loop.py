"""Encoder training on the engine with a toy model: sampling, parameter groups, final weights, failure modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from cirlab.distributed import DistributedContext
from cirlab.encoder_training.loop import EncoderLossBase, EncoderObjective, StepPosition, train_encoder
from cirlab.encoder_training.options import TrainingOptions
from cirlab.engine import StepOutput, TrainingDivergedError, read_state
from cirlab.engine.optim import lr_factor
from cirlab.engine.runlog import read_csv
from cirlab.errors import ConfigError


class Points(Dataset):
    """Samples ``(x, 2x)``; records the epochs it was set to."""

    def __init__(self, n: int) -> None:
        self.x = torch.linspace(-1, 1, n).view(-1, 1)
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.x[index], 2 * self.x[index]


class Regression(EncoderLossBase):
    """Mean squared error; ``poison_at`` makes the loss NaN from that call on."""

    step_stats = ("weight",)

    def __init__(self, poison_at: int | None = None) -> None:
        self.calls, self.poison_at, self.evaluated = 0, poison_at, 0
        self.positions: list[StepPosition] = []

    def loss(self, module: nn.Module, batch: Any, position: StepPosition) -> StepOutput:
        self.calls += 1
        self.positions.append(position)
        x, y = batch
        loss = ((module(x) - y) ** 2).mean()
        return StepOutput(loss * float("nan") if self.poison_at is not None and self.calls >= self.poison_at else loss)

    def after_step(self, model: nn.Module) -> dict[str, float]:
        return {"weight": float(model.weight.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        self.evaluated += 1
        return {"error": float((model.weight.detach() - 2).abs())}


def _train(tmp_path: Path, learner: Regression, dataset: Points, **options: Any):
    options = TrainingOptions(**{"epochs": 3, "batch_size": 4, "lr": 0.1, "weight_decay": 0.0, "num_workers": 0,
                                 "tensorboard": False, "warmup_steps": 2, "progress": False, **options})
    torch.manual_seed(0)
    model = nn.Linear(1, 1, bias=False)
    objective = EncoderObjective(model=model, model_name="toy", learner=learner, dataset=dataset, options=options,
                                 ctx=DistributedContext(), device=torch.device("cpu"))
    return model, train_encoder(objective, out=tmp_path, identity={"kind": "toy"}, evaluate_before=True, kind="toy")


def test_the_loop_trains_logs_and_checkpoints(tmp_path: Path) -> None:
    learner, dataset = Regression(), Points(10)
    model, run = _train(tmp_path, learner, dataset)
    assert dataset.epochs == [0, 1, 2]
    assert run.steps == 6 and [r["step"] for r in run.history] == [0, 2, 4, 6]  # 10 samples, batch 4, drop_last
    assert learner.evaluated == 4 and run.before is not None
    assert learner.positions == [StepPosition(step, 6) for step in range(6)]
    assert run.after["error"] < run.before["error"]
    steps = read_csv(tmp_path / "steps.csv")
    assert [float(r["lr"]) for r in steps] == pytest.approx(
        [0.1 * lr_factor(s, total_steps=6, warmup_steps=2) for s in range(6)])
    assert float(steps[-1]["weight"]) == pytest.approx(float(model.weight.detach()))
    assert all(float(r["grad_norm"]) >= 0 for r in steps)
    state = read_state(tmp_path)
    assert (state["epoch"], state["step"], state["history"][0]["val/error"]) == (3, 6, run.before["error"])
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "config.json").exists()
    assert (tmp_path / "last" / "model.safetensors").exists()


def test_a_nan_loss_stops_with_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingDivergedError) as info:
        _train(tmp_path, Regression(poison_at=3), Points(10))
    assert "\n" not in str(info.value) and "step 3" in str(info.value) and "learning rate" in str(info.value)


def test_a_batch_larger_than_the_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch size 16 is larger than the 10 training samples"):
        _train(tmp_path, Regression(), Points(10), batch_size=16)
