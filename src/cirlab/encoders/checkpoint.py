"""cirlab encoder checkpoints: a folder with ``model.safetensors`` and ``config.json``.

``config.json`` names the open_clip architecture the weights belong to, whether the model uses
QuickGELU (OpenAI's weights do, open_clip's plain configs do not, and the state dict cannot tell),
the weights hash (see :mod:`cirlab.encoders.hashing`) and any extra information the trainer adds.
Both files are written atomically and ``config.json`` last, after the previous one was removed, so a
folder whose writer was killed reads as incomplete rather than as a mix of old and new; on load the
weights are checked against the recorded hash, which catches a corrupt or swapped weights file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cirlab.encoders.hashing import state_dict_hash
from cirlab.errors import WeightsUnavailableError
from cirlab.io import atomic_path, atomic_write_json

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CHECKPOINT_FORMAT = "cirlab-encoder"
CHECKPOINT_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def uses_quick_gelu(model: nn.Module) -> bool:
    """Whether any layer of ``model`` is open_clip's QuickGELU activation."""
    from open_clip.transformer import QuickGELU

    return any(isinstance(module, QuickGELU) for module in unwrap(model).modules())


def save_encoder_checkpoint(model: nn.Module, spec_model_name: str, folder: str | Path,
                            extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and architecture name to ``folder``; return the folder.

    ``spec_model_name`` is the open_clip (or cirlab small) architecture name the model was built
    from, e.g. ``cirlab-vit-tiny`` or ``RN50x4``. ``extra`` (JSON-able) is stored under ``"extra"`` in
    ``config.json``, for example the training run that produced the weights. The checkpoint loads
    with ``EncoderSpec(model=spec_model_name, checkpoint=folder)``.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bare = unwrap(model)
    # Cloning breaks any storage sharing between entries, which safetensors refuses to write.
    state = {name: tensor.detach().to("cpu").clone().contiguous() for name, tensor in bare.state_dict().items()}
    config = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model": spec_model_name,
        "quick_gelu": uses_quick_gelu(bare),
        "weights_file": WEIGHTS_FILE,
        "weights_hash": state_dict_hash(state),
        "extra": extra or {},
    }
    (folder / CONFIG_FILE).unlink(missing_ok=True)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": CHECKPOINT_FORMAT, "model": spec_model_name})
    atomic_write_json(folder / CONFIG_FILE, config)
    return folder


def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    """Read and validate ``config.json`` of the checkpoint at ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsUnavailableError(f"{folder}: encoder checkpoint folder not found")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise WeightsUnavailableError(f"{path}: missing; {folder} is not a complete cirlab encoder checkpoint")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsUnavailableError(f"{path}: unreadable checkpoint config ({_one_line(exc)})") from None
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        raise WeightsUnavailableError(f"{path}: not a cirlab encoder checkpoint config")
    if config.get("format_version") != CHECKPOINT_VERSION:
        raise WeightsUnavailableError(f"{path}: checkpoint format {config.get('format_version')!r}, "
                                      f"this cirlab reads format {CHECKPOINT_VERSION}")
    if not isinstance(config.get("model"), str) or not config["model"]:
        raise WeightsUnavailableError(f"{path}: no architecture name under 'model'")
    return config


def read_checkpoint_weights(folder: str | Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Read the weights of the checkpoint at ``folder`` and check them against ``config``'s hash."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / config.get("weights_file", WEIGHTS_FILE)
    if not path.is_file():
        raise WeightsUnavailableError(f"{path}: weights file missing from the encoder checkpoint")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsUnavailableError(f"{path}: cannot read weights ({_one_line(exc)})") from None
    expected = config.get("weights_hash")
    if expected and state_dict_hash(state) != expected:
        raise WeightsUnavailableError(f"{path}: weights do not match the hash in {CONFIG_FILE} "
                                      f"(corrupt or replaced file)")
    return state


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: Path, architecture: str) -> None:
    """Load ``state`` into ``model`` exactly, or explain in one line why it does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or reshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if reshaped:
            k = reshaped[0]
            parts.append(f"{len(reshaped)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs "
                         f"{tuple(own[k].shape)})")
        raise WeightsUnavailableError(f"{source}: weights do not fit architecture {architecture!r}: "
                                      f"{', '.join(parts)} tensors")
    model.load_state_dict(state, strict=True)


def _one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, shortened."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
