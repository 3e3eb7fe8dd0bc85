"""``evaluate``: the Python form of ``cirlab eval`` — open a cache, load a combiner, run the protocol.

The combiner is either a trained checkpoint (a folder holding ``combiner.safetensors`` and
``combiner.json``, or a training run folder whose best checkpoint is in ``best/``) or a parameter-free
combiner chosen by name (``sum``), loaded by :func:`~cirlab.combiners.persistence.load_combiner_for`
like every command that uses a combiner. The result records the feature cache's identity and can be
written as JSON, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cirlab.combiners.persistence import load_combiner_for
from cirlab.evaluation.fashioniq import FashionIQValidation
from cirlab.evaluation.results import EvaluationResult
from cirlab.features.cache import FeatureCache
from cirlab.io import atomic_write_json
from cirlab.runtime import resolve_device


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
    module, description = load_combiner_for(cache, checkpoint, name=None if checkpoint is not None else combiner,
                                            device=torch_device)
    metadata = {
        "features": {"path": str(cache.root), **cache.identity()},
        "model": cache.manifest.get("model"),
        **description,
    }
    validation = FashionIQValidation(cache, categories=categories, split=split, device=torch_device,
                                     batch_size=batch_size)
    result = validation.evaluate(module, metadata=metadata, show_progress=show_progress)
    if out is not None:
        atomic_write_json(out, result.to_dict())
    return result
