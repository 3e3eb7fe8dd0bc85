"""Checkpoint folders of a training run, the trainer state inside them, and RNG capture.

A run folder ``RUN`` holds ``last/`` (the newest epoch: the model as its objective saves it, plus
``trainer_state.pt``) and, when the run selects a checkpoint by a validation metric, ``best/`` (the
model only). ``trainer_state.pt`` holds the optimiser, schedule and gradient-scaler states, epoch and
step, the RNG states of every process (Python, NumPy, torch, CUDA and the objective's own generators),
the best result so far, the epoch history and the run's identity; together with the weights they let
``--resume`` continue a killed run exactly. Once a run has finished, its ``last/`` keeps no optimiser
state (it is the largest part of a checkpoint and only an unfinished run needs it).

Each folder is written beside its destination under a temporary name and then swapped in, so a reader
(or a resumed run) sees the previous checkpoint or the new one, never a mixture of two epochs.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cirlab.errors import CacheMismatchError
from cirlab.io import atomic_path, fsync_dir

STATE_FILE = "trainer_state.pt"
STATE_FORMAT_VERSION = 2
BEST, LAST = "best", "last"


@contextmanager
def atomic_folder(destination: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``destination``; swap it in for ``destination`` on success.

    A folder cannot be renamed over a non-empty one, so the swap takes two renames: the old folder
    goes aside as ``.<name>.old``, the new one takes its place, the old one is deleted.
    :func:`recover_folder` completes a swap that a kill interrupted between the two renames.
    """
    destination = Path(destination)
    tmp = destination.parent / f".{destination.name}.tmp"
    old = destination.parent / f".{destination.name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        os.replace(destination, old)
    os.replace(tmp, destination)
    fsync_dir(destination.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(destination: str | Path) -> None:
    """Finish or undo a swap of :func:`atomic_folder` that was interrupted; drop leftover temporaries."""
    destination = Path(destination)
    old = destination.parent / f".{destination.name}.old"
    if not destination.exists() and old.exists():
        os.replace(old, destination)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(destination.parent / f".{destination.name}.tmp", ignore_errors=True)


def write_checkpoint(folder: Path, save_model: Callable[[Path], None], state: dict[str, Any] | None = None) -> None:
    """Write a checkpoint folder: the model through ``save_model(tmp_folder)``, then the trainer state."""
    with atomic_folder(folder) as tmp:
        save_model(tmp)
        if state is not None:
            with atomic_path(tmp / STATE_FILE) as path:
                torch.save({"format_version": STATE_FORMAT_VERSION, **state}, path)


def has_state(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a resumable checkpoint."""
    return (Path(run_dir) / LAST / STATE_FILE).is_file()


def read_state(run_dir: str | Path) -> dict[str, Any]:
    """The trainer state of ``run_dir``'s last checkpoint."""
    path = Path(run_dir) / LAST / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file fails in many ways (zip, pickle, decoding); each means "unreadable"
        raise CacheMismatchError(f"{path}: unreadable trainer state ({_first_line(exc)})") from None
    if not isinstance(state, dict) or state.get("format_version") != STATE_FORMAT_VERSION:
        raise CacheMismatchError(f"{path}: not a trainer state of format {STATE_FORMAT_VERSION} (written by another "
                                 f"cirlab version); start the run again in a new folder")
    return state


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------- RNG states
def capture_rng(generators: dict[str, torch.Generator], device: torch.device) -> dict[str, Any]:
    """This process's RNG states (global ones and ``generators``), in types ``torch.load`` reads safely."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "generators": {name: generator.get_state() for name, generator in generators.items()},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator], device: torch.device) -> None:
    """Put back states taken by :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
