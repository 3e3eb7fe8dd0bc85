"""Training a combiner on cached features, with a negative-sampling strategy chosen by name.

``config = load_config("synthetic", {"features": ..., "out": ...})`` then ``train(config)``; the
run folder's files are described in :mod:`cirlab.engine.runlog`.
"""

from cirlab.training.config import TrainConfig, load_config, shipped_configs
from cirlab.training.trainer import TrainingDivergedError, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainingDivergedError", "load_config", "shipped_configs", "train"]
