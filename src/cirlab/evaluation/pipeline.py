"""``evaluate``: the Python form of ``cirlab eval`` — open a cache, load a combiner, run the protocol.

The combiner is either a trained checkpoint (a folder holding ``combiner.safetensors`` and
``combiner.json``, or a training run folder whose best checkpoint is in ``best/``) or a parameter-free
combiner chosen by name (``sum``). The result can be written as JSON, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.evaluation.fashioniq import FashionIQValidation
from cirlab.evaluation.results import EvaluationResult
from cirlab.features.cache import FeatureCache
from cirlab.io import atomic_write_json
from cirlab.runtime import resolve_device

BEST_CHECKPOINT_DIR = "best"

#: Manifest keys copied into the result, so that a number can be traced to the features it came from.
MANIFEST_KEYS_REPORTED: tuple[str, ...] = ("model", "pretrained", "weights_hash", "data_fingerprint", "dim")


def resolve_checkpoint(path: str | Path) -> Path:
    """The combiner folder that ``path`` names: itself, or ``path/best`` for a training run folder."""
    from cirlab.combiners import CONFIG_FILE

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: checkpoint folder not found")
    for folder in (path, path / BEST_CHECKPOINT_DIR):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(f"{path}: not a combiner checkpoint (no {CONFIG_FILE} here or in {BEST_CHECKPOINT_DIR}/)")


def load_combiner_for(cache: FeatureCache, checkpoint: str | Path | None, combiner: str,
                      device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The combiner to evaluate on ``cache`` (on ``device``) and a description of it for the result."""
    from cirlab.combiners import build_combiner, load_combiner, read_combiner_metadata

    if checkpoint is None:
        module = build_combiner(combiner, cache.dim)
        if any(p.numel() for p in module.parameters()):
            raise ConfigError(f"combiner {combiner!r} has trainable parameters; evaluate a trained one with "
                              f"--checkpoint RUN_DIR (only parameter-free combiners such as 'sum' run by name)")
        return module.to(device), {"combiner": combiner, "checkpoint": None}
    folder = resolve_checkpoint(checkpoint)
    meta = read_combiner_metadata(folder)
    config = meta["config"]
    if int(config["dim"]) != cache.dim:
        raise CacheMismatchError(f"{folder}: combiner trained on {config['dim']}-dimensional features, but the "
                                 f"feature cache {cache.root} holds {cache.dim}-dimensional ones")
    trained_on = meta.get("extra", {}).get("features") or {}
    for key in ("weights_hash", "data_fingerprint"):
        if trained_on.get(key) is not None and trained_on[key] != cache.manifest.get(key):
            raise CacheMismatchError(f"{folder}: combiner trained on features with {key} {trained_on[key]!r}, but "
                                     f"the feature cache {cache.root} has {cache.manifest.get(key)!r}")
    description = {"combiner": config["name"],
                   "checkpoint": {"path": str(folder), "config": config, "save_id": meta.get("save_id"),
                                  "extra": meta.get("extra", {})}}
    return load_combiner(folder, device=device), description


def evaluate(features: str | Path, checkpoint: str | Path | None = None, combiner: str = "sum",
             categories: list[str] | None = None, split: str = "val", out: str | Path | None = None,
             device: str = "auto", batch_size: int = 1024, expect: dict[str, Any] | None = None,
             show_progress: bool = True) -> EvaluationResult:
    """Evaluate a combiner on the FashionIQ protocol of the feature cache at ``features``.

    Args:
        features: feature cache folder written by ``cirlab extract``.
        checkpoint: a combiner checkpoint folder or a training run folder (its ``best/`` is used); when
            ``None``, the parameter-free combiner named ``combiner`` is built.
        combiner: combiner name used when no checkpoint is given.
        categories: categories to evaluate; every category of ``split`` in the cache by default.
        split: the split whose images form the gallery and whose triplets are the queries.
        out: when given, the result is written there as JSON (atomically).
        device: ``auto``, ``cpu``, ``cuda``...
        batch_size: queries combined and ranked at once.
        expect: manifest values the cache must have (see :meth:`FeatureCache.open`).
    """
    cache = FeatureCache.open(features, expect=expect)
    torch_device = resolve_device(device)
    module, description = load_combiner_for(cache, checkpoint, combiner, torch_device)
    metadata = {
        "features": {"path": str(cache.root), **{k: cache.manifest.get(k) for k in MANIFEST_KEYS_REPORTED}},
        "model": cache.manifest.get("model"),
        **description,
    }
    validation = FashionIQValidation(cache, categories=categories, split=split, device=torch_device,
                                     batch_size=batch_size)
    result = validation.evaluate(module, metadata=metadata, show_progress=show_progress)
    if out is not None:
        atomic_write_json(out, result.to_dict())
    return result
