"""Epoch checkpoints, RNG capture and the run-folder checks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cirlab.encoder_training.checkpointing import (
    TrainerState,
    capture_rng,
    check_run_folder,
    latest_checkpoint,
    load_trainer_state,
    restore_rng,
    save_checkpoint,
    write_run_config,
)
from cirlab.errors import CacheMismatchError, ConfigError


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_rng_states_survive_a_save_and_load(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached gaussian in NumPy's state
    state = capture_rng()
    expected = [_draws() for _ in range(3)]
    torch.save(state, tmp_path / "rng.pt")
    _draws()
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert [_draws() for _ in range(3)] == expected


def test_check_run_folder(tmp_path: Path) -> None:
    identity = {"kind": "pretrain", "epochs": 2, "lr": 0.001}
    check_run_folder(tmp_path, identity, resume=False)  # nothing there yet
    write_run_config(tmp_path, identity, {"device": "cpu"})
    with pytest.raises(ConfigError, match="already holds a training run.*--resume"):
        check_run_folder(tmp_path, identity, resume=False)
    check_run_folder(tmp_path, identity, resume=True)
    with pytest.raises(CacheMismatchError) as info:
        check_run_folder(tmp_path, {**identity, "lr": 0.01}, resume=True)
    assert "lr=0.001" in str(info.value) and "lr=0.01" in str(info.value) and "run.json" in str(info.value)


def test_save_checkpoint_points_latest_at_a_complete_folder_and_prunes(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    assert latest_checkpoint(tmp_path) is None
    for epoch in (1, 2, 3):
        state = TrainerState(epoch=epoch, step=epoch * 4, history=[{"epoch": epoch}], extra={"before": {"R@1": 1.0}})
        save_checkpoint(tmp_path, model, "linear", state, keep=2)
    folders = sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch-*"))
    assert folders == ["epoch-0002", "epoch-0003"]
    latest = latest_checkpoint(tmp_path)
    assert latest == tmp_path / "checkpoints" / "epoch-0003"
    loaded = load_trainer_state(latest)
    assert (loaded.epoch, loaded.step, loaded.extra) == (3, 12, {"before": {"R@1": 1.0}})
    config = json.loads((latest / "config.json").read_text())
    assert config["model"] == "linear" and config["extra"]["epoch"] == 3


def test_a_pointer_to_an_incomplete_folder_is_an_error(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, nn.Linear(2, 2), "linear", TrainerState(epoch=1, step=1))
    (tmp_path / "checkpoints" / "epoch-0001" / "trainer_state.pt").unlink()
    with pytest.raises(CacheMismatchError, match="incomplete"):
        latest_checkpoint(tmp_path)
