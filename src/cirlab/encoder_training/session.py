"""Setting up a training process: device, process group, seeding and the run folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cirlab.distributed import DistributedContext, distributed_session
from cirlab.encoder_training.checkpointing import check_run_folder, latest_checkpoint, write_run_config
from cirlab.encoder_training.options import TrainingOptions
from cirlab.runtime import autocast, resolve_device, seed_everything


@contextlib.contextmanager
def training_session(options: TrainingOptions) -> Iterator[tuple[DistributedContext, torch.device]]:
    """Join torchrun's process group (if any), pick this process's device and seed every generator."""
    device = resolve_device(options.device)
    with distributed_session(device) as ctx:
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        autocast(device, options.precision)  # refuses an impossible precision (fp16 on CPU) before any work
        seed_everything(options.seed)
        yield ctx, device


def resume_point(out: Path, identity: dict[str, Any], options: TrainingOptions) -> Path | None:
    """Check ``out`` for this run and return the epoch checkpoint to resume from, if any (reads only)."""
    check_run_folder(out, identity, resume=options.resume)
    return latest_checkpoint(out) if options.resume else None


def record_run(out: Path, identity: dict[str, Any], options: TrainingOptions, ctx: DistributedContext) -> None:
    """Write ``OUT/run.json`` from the main process once every process has read the folder."""
    ctx.barrier()
    if ctx.is_main:
        write_run_config(out, identity, {**options.settings(), "world_size": ctx.world_size})
    ctx.barrier()
