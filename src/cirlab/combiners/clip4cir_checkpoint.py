"""Combiners trained with CLIP4Cir's own code: its ``.pt`` checkpoints, loaded as cirlab's ``combiner``.

CLIP4Cir (Baldrati et al.) saves ``torch.save({"epoch": ..., "Combiner": combiner.state_dict()}, path)``; its
``Combiner`` has the layer names of cirlab's ``combiner`` (:class:`~cirlab.combiners.clip4cir.CLIP4CirCombiner`),
so the state dict loads as it is. The widths are read from the weights (the projection layer is ``[p, d]``, the
combiner layer ``[h, 2p]``). The file is read with ``weights_only=True``: a checkpoint is data, never code to run.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from cirlab.combiners.base import Combiner, build_combiner
from cirlab.errors import CacheMismatchError

#: The key of the combiner's state dict in a CLIP4Cir checkpoint.
CLIP4CIR_KEY = "Combiner"
#: File suffixes of torch checkpoints, told apart from cirlab's combiner folders.
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pt", ".pth")


class Clip4CirCheckpointError(CacheMismatchError):
    """A file that is not a CLIP4Cir combiner checkpoint, or one that does not fit cirlab's ``combiner``."""


def is_torch_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` names a torch checkpoint file (rather than a cirlab combiner folder)."""
    path = Path(path)
    return path.suffix in CHECKPOINT_SUFFIXES and not path.is_dir()


def load_clip4cir_combiner(path: str | Path, device: str | torch.device = "cpu") -> tuple[Combiner, dict[str, Any]]:
    """The combiner in CLIP4Cir's checkpoint ``path``, in eval mode on ``device``, and its description."""
    path = Path(path)
    if not path.is_file():
        raise Clip4CirCheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as error:
        problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Clip4CirCheckpointError(f"{path}: not a readable torch checkpoint ({problem})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get(CLIP4CIR_KEY), dict):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise Clip4CirCheckpointError(f"{path}: not a CLIP4Cir combiner checkpoint (expected a dict with a "
                                      f"{CLIP4CIR_KEY!r} state dict; found {found})")
    state = {_strip(name): tensor for name, tensor in checkpoint[CLIP4CIR_KEY].items()}
    try:
        projection = state["text_projection_layer.weight"]
        hidden = state["combiner_layer.weight"]
        combiner = build_combiner("combiner", int(projection.shape[1]), projection_dim=int(projection.shape[0]),
                                  hidden_dim=int(hidden.shape[0]))
        combiner.load_state_dict(state)
    except (KeyError, RuntimeError, IndexError, AttributeError) as error:
        problem = str(error).strip().splitlines()[0]
        raise Clip4CirCheckpointError(f"{path}: the {CLIP4CIR_KEY!r} weights do not fit CLIP4Cir's combiner "
                                      f"({problem})") from None
    description = {"combiner": "combiner", "checkpoint": {"path": str(path), "format": "clip4cir",
                                                          "config": combiner.config(),
                                                          "epoch": checkpoint.get("epoch")}}
    return combiner.to(device).eval(), description


def _strip(name: str) -> str:
    """A parameter name without the ``module.`` prefix that ``nn.DataParallel`` adds."""
    return name.removeprefix("module.")
