"""Two processes under torchrun (gloo, CPU) train the same model as one process on the same global batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from cirlab.training import load_config, train
from tests.training.fixtures import make_learnable_cache

SETTINGS = ["--combiner", "combiner", "--loss", "triplet", "--negatives", "hard", "--num-negatives", "4",
            "--epochs", "2", "--batch-size", "32", "--lr", "0.003", "--seed", "3", "--no-tensorboard",
            "--set", "combiner_options={projection_dim: 32, hidden_dim: 64, dropout: 0.0}",
            "--set", "caption_forms=[0]"]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_processes_match_one(tmp_path):
    cache = make_learnable_cache(tmp_path / "cache")
    out = tmp_path / "ddp"
    env = {**os.environ, "CIRLAB_NO_PROGRESS": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "cirlab", "train", "--features", str(cache), "--out", str(out), "--device", "cpu", *SETTINGS]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["data"]["processes"] == 2
    assert metrics["steps"] == 20
    assert all(r["sampler/queries"] == 320 for r in metrics["history"][1:])  # both processes' queries

    # The hard sampler, one caption form and no dropout leave no randomness that differs between
    # processes, so averaging two half-batch gradients must give the single-process run's weights.
    single = train(load_config(None, {
        "features": str(cache), "out": str(tmp_path / "single"), "combiner": "combiner", "loss": "triplet",
        "negatives": "hard", "num_negatives": 4, "epochs": 2, "batch_size": 32, "lr": 0.003, "seed": 3,
        "tensorboard": False, "device": "cpu", "caption_forms": [0],
        "combiner_options": {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.0}}))
    ddp_weights = load_file(str(out / "last" / "combiner.safetensors"))
    single_weights = load_file(str(tmp_path / "single" / "last" / "combiner.safetensors"))
    for name, tensor in single_weights.items():
        assert torch.allclose(ddp_weights[name], tensor, atol=1e-4), name
    ddp_losses = [r["train/loss"] for r in metrics["history"][1:]]
    single_losses = [r["train/loss"] for r in single.history[1:]]
    assert ddp_losses == pytest.approx(single_losses, rel=1e-3)
