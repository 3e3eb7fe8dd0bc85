"""Training a combiner on cached features, with a negative-sampling strategy chosen by name.

``config = load_config("synthetic", {"features": ..., "out": ...})`` then ``train(config)``; the
run folder's files are described in :mod:`cirlab.engine.runlog`.

Names are imported on first use, so ``import cirlab.training.config`` does not load torch.
"""

from __future__ import annotations

from cirlab.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "cirlab.training.config",
    "load_config": "cirlab.training.config",
    "shipped_configs": "cirlab.training.config",
    "TrainResult": "cirlab.training.trainer",
    "TrainingDivergedError": "cirlab.training.trainer",
    "train": "cirlab.training.trainer",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
