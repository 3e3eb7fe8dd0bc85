"""``evaluate``: the Python form of ``cirlab eval`` — open a cache, load a combiner, run the cache's protocol.

The combiner is either a trained checkpoint (a folder holding ``combiner.safetensors`` and
``combiner.json``, or a training run folder whose best checkpoint is in ``best/``) or a parameter-free
combiner chosen by name (``sum``), loaded by :func:`~cirlab.combiners.persistence.load_combiner_for`
like every command that uses a combiner. The result records the feature cache's identity and can be
written as JSON, atomically. A split without targets (CIRR's ``test1``) gives the test server's submission
files instead, checked before they are reported written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cirlab.combiners.persistence import load_combiner_for
from cirlab.errors import ConfigError
from cirlab.evaluation.protocol import build_protocol
from cirlab.evaluation.results import EvaluationResult
from cirlab.evaluation.submission import METRICS, SubmissionResult, check_submission, pair_specs
from cirlab.features.cache import FeatureCache
from cirlab.io import atomic_write_json
from cirlab.runtime import resolve_device


def evaluate(features: str | Path, checkpoint: str | Path | None = None, combiner: str = "sum",
             categories: list[str] | None = None, split: str = "val", out: str | Path | None = None,
             device: str = "auto", batch_size: int = 1024, expect: dict[str, Any] | None = None,
             show_progress: bool = True, protocol: str | None = None, gallery: str | None = None,
             submission: str | Path | None = None) -> EvaluationResult | SubmissionResult:
    """Evaluate a combiner on the protocol of the feature cache at ``features`` (FashionIQ's or CIRR's).

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
        protocol: the protocol's name (:data:`~cirlab.evaluation.protocol.PROTOCOLS`); by default the cache's
            data set's protocol for ``split`` (``cirr-submission`` for a CIRR split without targets).
        gallery: FashionIQ's gallery, ``split`` (default) or ``triplets``.
        submission: folder for the test server's files, for a submission protocol; each file is checked
            against the cache's annotation after it is written.
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
    options: dict[str, Any] = {"gallery": gallery} if gallery is not None else {}
    chosen = build_protocol(cache, split, protocol, categories=categories, device=torch_device,
                            batch_size=batch_size, **options)
    result = chosen.evaluate(module, metadata=metadata, show_progress=show_progress)
    if isinstance(result, SubmissionResult):
        if submission is None:
            raise ConfigError(f"the {split!r} split of {cache.root} has no targets to score; pass --submission DIR "
                              f"to write the evaluation server's files")
        pairs, images = pair_specs(cache, split)
        for path, metric in zip(result.write(submission), METRICS):
            check_submission(path, pairs, images, metric=metric)
    elif submission is not None:
        raise ConfigError(f"--submission writes test-server files for a split without targets; {split!r} of "
                          f"{cache.root} has targets, so it is scored here")
    if out is not None:
        atomic_write_json(out, result.to_dict())
    return result
