"""Encoder training on the engine: what ``pretrain`` and ``finetune`` share.

What differs between the two (the forward pass and loss, what happens after an optimiser step, the
held-out evaluation, any statistics, generators and state of their own, such as fine-tuning's mined
negatives) is an :class:`EncoderLoss`; :class:`EncoderObjective` adds what both need to run
on the engine (:mod:`cirlab.engine`): distributed sampling of a dataset, open_clip's parameter grouping,
autocast, and saving the encoder as a checkpoint :mod:`cirlab.encoders` loads. The loop, AdamW with a
cosine schedule, gradient scaling and clipping, logs, checkpoints and resume are the engine's.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cirlab.distributed import DistributedContext, wrap_ddp
from cirlab.encoder_training.options import TrainingOptions
from cirlab.engine import Engine, LoopSettings, ObjectiveBase, StepOutput
from cirlab.engine.optim import decay_groups, default_warmup
from cirlab.errors import ConfigError
from cirlab.runtime import autocast

#: Prefix of the validation metrics in a history record.
VAL = "val/"


@dataclass(frozen=True)
class StepPosition:
    """Where a step stands in the run: its 0-based index over every epoch, and the run's number of steps."""

    step: int
    total: int

    @property
    def progress(self) -> float:
        """The share of training done before this step (0 at the first step)."""
        return self.step / max(1, self.total)


class EncoderLoss(Protocol):
    """The part of an encoder training run that is specific to what is being learned."""

    #: Statistics of each step besides the loss (``steps.csv`` columns), from :meth:`loss` or :meth:`after_step`.
    step_stats: tuple[str, ...]

    def loss(self, module: nn.Module, batch: Any, position: StepPosition) -> StepOutput:
        """Forward ``batch`` through ``module`` (the possibly DDP-wrapped model); return the loss and its stats."""

    def after_step(self, model: nn.Module) -> dict[str, float]:
        """Adjust ``model`` after an optimiser step; return extra values to log for the step."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Held-out metrics of ``model`` (called on the main process only)."""

    def epoch_stats(self) -> dict[str, float]:
        """Values of the finished epoch, the same on every process (every process calls this)."""

    def generators(self) -> dict[str, torch.Generator]:
        """Random generators of the loss, whose states a checkpoint keeps."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs besides the weights and the generators."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""


class EncoderLossBase:
    """Defaults of :class:`EncoderLoss`: no step statistics, nothing after a step or an epoch, no generators and
    no state."""

    step_stats: tuple[str, ...] = ()

    def after_step(self, model: nn.Module) -> dict[str, float]:
        return {}

    def epoch_stats(self) -> dict[str, float]:
        return {}

    def generators(self) -> dict[str, torch.Generator]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class EncoderObjective(ObjectiveBase):
    """An open_clip model, the dataset it learns from and an :class:`EncoderLoss`, as an engine objective."""

    def __init__(self, *, model: nn.Module, model_name: str, learner: EncoderLoss, dataset: Dataset,
                 options: TrainingOptions, ctx: DistributedContext, device: torch.device,
                 forward_module: nn.Module | None = None,
                 checkpoint_extra: dict[str, Any] | None = None) -> None:
        self.model, self.model_name, self.learner, self.dataset = model, model_name, learner, dataset
        self.options, self.ctx, self.device = options, ctx, device
        self.step_stats = learner.step_stats
        self.checkpoint_extra = checkpoint_extra or {}
        self.sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                          seed=options.seed, drop_last=True)
        if len(self.sampler) < options.batch_size:
            raise ConfigError(f"batch size {options.batch_size} is larger than the {len(self.sampler)} training "
                              f"samples per process ({len(dataset)} in all, {ctx.world_size} processes); "
                              f"lower --batch-size")
        self.loader = DataLoader(dataset, batch_size=options.batch_size, sampler=self.sampler,
                                 num_workers=options.num_workers, drop_last=True, pin_memory=device.type == "cuda")
        self.module = wrap_ddp(forward_module or model, ctx, device)
        self.position = StepPosition(0, len(self.loader) * options.epochs)  # of the step being taken

    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return decay_groups([self.model], weight_decay)

    def train_modules(self) -> list[nn.Module]:
        return [self.model]

    def batches(self, epoch: int) -> Iterator[Any]:
        self.sampler.set_epoch(epoch - 1)
        self.dataset.set_epoch(epoch - 1)  # type: ignore[attr-defined]
        steps = len(self.loader)
        for position, batch in enumerate(self.loader):
            self.position = StepPosition((epoch - 1) * steps + position, steps * self.options.epochs)
            yield batch

    def step(self, batch: Any) -> StepOutput:
        with autocast(self.device, self.options.precision):
            return self.learner.loss(self.module, batch, self.position)

    def after_step(self) -> dict[str, float]:
        return self.learner.after_step(self.model)

    def epoch_stats(self) -> dict[str, float]:
        return self.learner.epoch_stats()

    def generators(self) -> dict[str, torch.Generator]:
        return self.learner.generators()

    def state_dict(self) -> dict[str, Any]:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)

    def evaluate(self, epoch: int) -> dict[str, float]:
        return {f"{VAL}{key}": value for key, value in self.learner.evaluate(self.model).items()}

    def save(self, folder: Path, record: dict[str, Any]) -> None:
        from cirlab.encoders import save_encoder_checkpoint

        save_encoder_checkpoint(self.model, self.model_name, folder,
                                extra={"epoch": record["epoch"], "step": record["step"], **self.checkpoint_extra})


@dataclass
class TrainingRun:
    """The outcome of :func:`train_encoder`."""

    history: list[dict[str, Any]]  # the engine's epoch records (see cirlab.engine.runlog)
    steps: int
    seconds: float  # wall time of this call (a resumed run counts only its own part)
    resumed_from_epoch: int  # 0 for a run that started from scratch
    before: dict[str, float] | None = None  # held-out metrics before the first step, when asked for
    after: dict[str, float] = field(default_factory=dict)  # held-out metrics after the last epoch


def validation_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The held-out metrics of an epoch record, without their ``val/`` prefix."""
    return {key[len(VAL):]: value for key, value in record.items() if key.startswith(VAL)}


def loop_settings(options: TrainingOptions, steps_per_epoch: int, *, evaluate_before: bool, label: str) -> LoopSettings:
    """The engine's settings for encoder training: open_clip's AdamW and cosine schedule with warm-up."""
    total = steps_per_epoch * options.epochs
    warmup = options.warmup_steps if options.warmup_steps is not None else default_warmup(total)
    return LoopSettings(epochs=options.epochs, lr=options.lr, weight_decay=options.weight_decay, betas=options.betas,
                        eps=options.eps, schedule="cosine", warmup_steps=warmup, grad_clip=options.grad_clip,
                        precision=options.precision, eval_every=1, evaluate_before=evaluate_before,
                        tensorboard=options.tensorboard, resume=options.resume, progress=options.progress,
                        label=label)


def train_encoder(objective: EncoderObjective, *, out: Path, identity: dict[str, Any], evaluate_before: bool = False,
                  kind: str = "train", on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> TrainingRun:
    """Train ``objective``'s model for ``options.epochs`` on the engine; write the final encoder to ``out``.

    ``out`` is the run folder (``last/`` holds the resumable checkpoint) and, at the end, an encoder
    checkpoint folder itself (``EncoderSpec(checkpoint=out)``). ``identity`` is what a resumed run must
    share with the run it continues.
    """
    from cirlab.encoders import save_encoder_checkpoint

    options, ctx = objective.options, objective.ctx
    settings = loop_settings(options, objective.steps_per_epoch(), evaluate_before=evaluate_before, label=kind)
    engine = Engine(objective, settings, out, ctx=ctx, device=objective.device, identity=identity)
    fit = engine.fit(on_epoch_end)
    if ctx.is_main:
        save_encoder_checkpoint(objective.model, objective.model_name, out,
                                extra={"epoch": options.epochs, "step": fit.steps, **objective.checkpoint_extra})
    ctx.barrier()
    evaluated = [record for record in fit.history if validation_metrics(record)]
    before = validation_metrics(fit.history[0]) if evaluate_before and fit.history else None
    after = validation_metrics(evaluated[-1]) if evaluated and evaluated[-1]["epoch"] > 0 else {}
    return TrainingRun(history=fit.history, steps=fit.steps, seconds=fit.seconds,
                       resumed_from_epoch=fit.resumed_from_epoch, before=before, after=after)


@contextlib.contextmanager
def quiet_gather_deprecation() -> Iterator[None]:
    """Hide torch's FutureWarning about ``torch.distributed.nn.all_gather``, which open_clip's feature gather
    uses: it would repeat on every process and users cannot act on it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather is deprecated",
                                category=FutureWarning)
        yield
