"""Setting up an encoder training process: device, process group, seeding and the run folder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cirlab.distributed import DistributedContext, distributed_session
from cirlab.encoder_training.options import TrainingOptions
from cirlab.engine import check_run_folder
from cirlab.io import atomic_write_json
from cirlab.runtime import autocast, resolve_device, seed_everything

#: What the run is (data, model, options), for the reader of a run folder.
RUN_DESCRIPTION = "run.json"


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


def resume_point(out: Path, options: TrainingOptions, ctx: DistributedContext) -> Path | None:
    """The checkpoint folder to build the model from when resuming (``None``: a fresh run).

    A folder that holds a run is refused without ``--resume``; whether the run may be continued with
    these options is checked by the engine against the checkpoint's identity.
    """
    return check_run_folder(out, resume=options.resume, ctx=ctx)


def record_run(out: Path, identity: dict[str, Any], options: TrainingOptions, ctx: DistributedContext) -> None:
    """Write ``OUT/run.json`` from the main process once every process has read the folder."""
    ctx.barrier()
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / RUN_DESCRIPTION,
                          {"identity": identity, "settings": {**options.settings(), "world_size": ctx.world_size}})
    ctx.barrier()
