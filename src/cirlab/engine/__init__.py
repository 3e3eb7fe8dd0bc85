"""The one training engine: loop, optimiser and schedule, checkpoints with RNG states, run log and resume.

Combiner training, encoder pretraining and fine-tuning are objectives (:class:`Objective`) plugged
into :class:`Engine`, as open_clip keeps one ``train_one_epoch`` for every model it trains.
"""

from cirlab.engine.checkpoint import BEST, LAST, has_state, read_state
from cirlab.engine.loop import (
    Engine,
    EpochCallback,
    FitResult,
    LoopSettings,
    TrainingDivergedError,
    check_run_folder,
    identity_changes,
)
from cirlab.engine.objective import Objective, ObjectiveBase, StepOutput

__all__ = [
    "BEST", "LAST", "Engine", "EpochCallback", "FitResult", "LoopSettings", "Objective", "ObjectiveBase",
    "StepOutput", "TrainingDivergedError", "check_run_folder", "has_state", "identity_changes", "read_state",
]
