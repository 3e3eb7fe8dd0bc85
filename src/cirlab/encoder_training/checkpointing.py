"""Epoch checkpoints of encoder training and the run folder's bookkeeping.

A run folder ``OUT`` holds::

    OUT/run.json                          what the run is (data, model, options); checked on --resume
    OUT/checkpoints/epoch-0003/           one folder per kept epoch:
        model.safetensors, config.json      the encoder, as cirlab.encoders writes it (loadable by extract)
        trainer_state.pt                    optimiser, scheduler, scaler, epoch/step, RNG states, history
    OUT/checkpoints/latest.json           which epoch folder is complete (written last)
    OUT/model.safetensors, config.json    the final encoder, once training has finished

Each file is written atomically and ``latest.json`` is replaced only after its folder is complete, so
a run killed at any moment resumes from the last finished epoch with weights and trainer state that
belong together.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.io import atomic_path, atomic_write_json

RUN_CONFIG = "run.json"
CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest.json"
TRAINER_STATE = "trainer_state.pt"
WEIGHTS_FILE = "model.safetensors"


# ------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's generators, in a form ``torch.load(weights_only=True)`` reads."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------ run config
def check_run_folder(out: Path, identity: dict[str, Any], *, resume: bool) -> None:
    """Refuse to start a run in a folder that holds another, or to resume one that was started differently.

    ``identity`` holds what must not change across a resume (data, model, schedule, seed). A folder
    that already holds a run is refused unless ``resume`` is set, so a finished run is never
    overwritten by accident. Only reads, so every process of a distributed run may call it.
    """
    path = out / RUN_CONFIG
    if not path.exists():
        return
    if not resume:
        raise ConfigError(f"{out}: already holds a training run ({RUN_CONFIG}); pass --resume to continue it "
                          f"or choose another output folder")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["identity"]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CacheMismatchError(f"{path}: unreadable run description ({exc})") from None
    for key in sorted(set(saved) | set(identity)):
        if saved.get(key) != identity.get(key):
            raise CacheMismatchError(f"{path}: this run was started with {key}={saved.get(key)!r}, "
                                     f"resuming asked for {key}={identity.get(key)!r}")


def write_run_config(out: Path, identity: dict[str, Any], settings: dict[str, Any]) -> None:
    """Write ``OUT/run.json`` (``settings``: what may change across a resume, such as device and workers)."""
    atomic_write_json(out / RUN_CONFIG, {"identity": identity, "settings": settings})


# ---------------------------------------------------------------------------------- checkpoints
@dataclass
class TrainerState:
    """Everything besides the weights that a resumed run needs to continue exactly."""

    epoch: int = 0  # finished epochs
    step: int = 0  # optimiser steps taken
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one EpochRecord dict per finished epoch
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the metrics measured before training

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary for ``torch.save``."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def epoch_folder(out: Path, epoch: int) -> Path:
    """Folder of the checkpoint taken after ``epoch`` finished epochs."""
    return out / CHECKPOINTS_DIR / f"epoch-{epoch:04d}"


def save_checkpoint(out: Path, model: nn.Module, model_name: str, state: TrainerState, *, keep: int = 1,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the epoch checkpoint of ``state.epoch`` and point ``latest.json`` at it; keep the newest ``keep``."""
    from cirlab.encoders import save_encoder_checkpoint

    folder = epoch_folder(out, state.epoch)
    save_encoder_checkpoint(model, model_name, folder, extra={"epoch": state.epoch, "step": state.step,
                                                              **(extra or {})})
    with atomic_path(folder / TRAINER_STATE) as tmp:
        torch.save(state.to_dict(), tmp)
    atomic_write_json(out / CHECKPOINTS_DIR / LATEST, {"epoch": state.epoch, "step": state.step,
                                                       "folder": folder.name})
    kept = sorted(p for p in (out / CHECKPOINTS_DIR).glob("epoch-*") if p.is_dir())
    for old in kept[:-keep] if keep > 0 else []:
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(out: Path) -> Path | None:
    """The folder ``latest.json`` names, or ``None`` when the run has no finished epoch."""
    pointer = out / CHECKPOINTS_DIR / LATEST
    if not pointer.exists():
        return None
    try:
        folder = out / CHECKPOINTS_DIR / json.loads(pointer.read_text(encoding="utf-8"))["folder"]
    except (ValueError, KeyError, OSError) as exc:
        raise CacheMismatchError(f"{pointer}: unreadable checkpoint pointer ({exc})") from None
    if not (folder / TRAINER_STATE).exists() or not (folder / WEIGHTS_FILE).exists():
        raise CacheMismatchError(f"{folder}: checkpoint named by {LATEST} is incomplete")
    return folder


def load_trainer_state(folder: Path) -> TrainerState:
    """Read ``trainer_state.pt`` of a checkpoint folder."""
    path = folder / TRAINER_STATE
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise CacheMismatchError(f"{path}: unreadable trainer state ({exc})") from None
    return TrainerState.from_dict(data)
