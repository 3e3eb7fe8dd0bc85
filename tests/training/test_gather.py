"""Two gloo processes train the contrastive losses as one process does: the gathered global batch.

Under ``torchrun`` each process scores its queries against the targets of every process's slice
(``gather_batch``), so its loss is its rows of the global batch's loss and DistributedDataParallel's
average of the gradients is the single process's gradient. Checked at one step (several caption forms,
in-batch and mined negatives, both contrastive losses) and over whole runs (``cirlab train`` under
``torchrun`` against ``train`` in one process). Dropout is off: its masks are drawn per process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from cirlab.distributed import DistributedContext
from cirlab.features.cache import FeatureCache
from cirlab.training import load_config, train
from cirlab.training.config import TrainConfig
from cirlab.training.data import Batch
from cirlab.training.objective import CombinerObjective
from tests.training.fixtures import make_learnable_cache

WORLD, BATCH = 2, 16
COMBINER = {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.0}

#: One step of each: (loss, negatives, gather_batch).
STEP_CASES: dict[str, tuple[str, str, bool]] = {
    "contrastive in-batch": ("contrastive", "in-batch", True),
    "hn-nce in-batch": ("hn-nce", "in-batch", True),
    "contrastive hard": ("contrastive", "hard", True),
    "hn-nce hard": ("hn-nce", "hard", True),
    "contrastive in-batch, local loss": ("contrastive", "in-batch", False),
}


def _config(cache: Path, out: Path, loss: str, negatives: str, gather: bool) -> TrainConfig:
    return TrainConfig(features=str(cache), out=str(out), combiner="combiner", combiner_options=dict(COMBINER),
                       loss=loss, negatives=negatives, num_negatives=4, batch_size=BATCH, gather_batch=gather,
                       caption_forms=[0, 1, 2, 3], seed=3, device="cpu", tensorboard=False).validate()


def _rows(batch: Batch, rows: slice) -> Batch:
    """The rows ``rows`` of every per-triplet field of ``batch``."""
    assert batch.true_matches is None  # the learnable cache has no synthetic ground truth
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name)[rows] for f in dataclasses.fields(batch)
                                         if isinstance(getattr(batch, f.name), torch.Tensor)})


def _one_step(cache: Path, out: Path, ctx: DistributedContext) -> dict[str, Any]:
    """Per case: the loss, its statistics and the (averaged) gradients of one step on this process's slice of a
    global batch whose caption forms are drawn once for all processes."""
    results = {}
    for name, (loss, negatives, gather) in STEP_CASES.items():
        objective = CombinerObjective(_config(cache, out / f"rank-{ctx.rank}", loss, negatives, gather),
                                      FeatureCache.open(cache), torch.device("cpu"), ctx)
        batch = objective.data.batch(torch.arange(BATCH), torch.Generator().manual_seed(0))
        rows = slice(ctx.rank * BATCH // ctx.world_size, (ctx.rank + 1) * BATCH // ctx.world_size)
        output = objective.step(_rows(batch, rows))
        output.loss.backward()  # DistributedDataParallel averages the gradients over processes
        results[name] = {"loss": output.loss.item(), "stats": {k: float(v) for k, v in output.stats.items()
                                                               if k != "sample_time_s"},
                         "grads": {n: p.grad.clone() for n, p in objective.combiner.named_parameters()}}
    return results


def _step_worker(rank: int, store: str, cache: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        results = _one_step(Path(cache), Path(out), DistributedContext(rank=rank, world_size=WORLD))
        torch.save(results, Path(out) / f"rank-{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_a_step_on_two_processes_is_the_step_of_one(tmp_path: Path) -> None:
    cache = make_learnable_cache(tmp_path / "cache")
    mp.spawn(_step_worker, args=(str(tmp_path / "store"), str(cache), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank-{rank}.pt") for rank in range(WORLD)]
    single = _one_step(cache, tmp_path, DistributedContext())

    for name, (_, _, gather) in STEP_CASES.items():
        loss = sum(r[name]["loss"] for r in ranks) / WORLD  # the engine's step loss: the mean over processes
        stats = {key: sum(r[name]["stats"][key] for r in ranks) / WORLD for key in single[name]["stats"]}
        if not gather:  # the cheaper local loss: each query sees only its own slice's targets
            assert loss < single[name]["loss"] - 0.1, name
            continue
        assert loss == pytest.approx(single[name]["loss"], rel=1e-5), name
        assert stats == pytest.approx(single[name]["stats"], abs=1e-6), name
        for rank in ranks:  # every process holds the single process's gradient
            for parameter, grad in single[name]["grads"].items():
                torch.testing.assert_close(rank[name]["grads"][parameter], grad, rtol=1e-4, atol=1e-6,
                                           msg=f"{name}: {parameter}")


E2E_SETTINGS = {"combiner": "combiner", "num_negatives": 4, "epochs": 2, "batch_size": 32, "lr": 0.003, "seed": 3,
                "tensorboard": False, "device": "cpu", "caption_forms": [0, 1, 2, 3], "combiner_options": COMBINER}


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize(("loss", "negatives"), [("contrastive", "in-batch"), ("hn-nce", "hard")])
def test_two_process_runs_equal_one_process_runs(tmp_path: Path, loss: str, negatives: str) -> None:
    """Whole runs with several caption forms: the same losses every epoch and the same trained weights."""
    cache = make_learnable_cache(tmp_path / "cache")
    settings = {**E2E_SETTINGS, "loss": loss, "negatives": negatives}
    out = tmp_path / "ddp"
    env = {**os.environ, "CIRLAB_NO_PROGRESS": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
               "-m", "cirlab", "train", "--features", str(cache), "--out", str(out), "--device", "cpu",
               *[arg for key, value in settings.items() if key not in ("device", "tensorboard")
                 for arg in ("--set", f"{key}={json.dumps(value)}")], "--no-tensorboard"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["processes"] == WORLD and metrics["config"]["gather_batch"] is True

    single = train(load_config(None, {**settings, "features": str(cache), "out": str(tmp_path / "single")}))
    ddp_losses = [r["train/loss"] for r in metrics["history"][1:]]
    assert ddp_losses == pytest.approx([r["train/loss"] for r in single.history[1:]], rel=1e-5)
    ddp_weights = load_file(str(out / "last" / "combiner.safetensors"))
    for name, tensor in load_file(str(tmp_path / "single" / "last" / "combiner.safetensors")).items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=1e-4, atol=1e-4, msg=name)
