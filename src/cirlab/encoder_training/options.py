"""Options of encoder training: those ``pretrain`` and ``finetune`` share (schedule, optimiser, runtime and data
handling), and what ``finetune``'s contrastive loss contrasts each query with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cirlab.data import PREPROCESS_KINDS, MissingPolicy
from cirlab.errors import ConfigError
from cirlab.training.config import IN_BATCH

#: CLIP4Cir's optimiser settings (AdamW, lr 2e-6, betas 0.9/0.999, eps 1e-7) and batch size 128.
FINETUNE_DEFAULTS: dict[str, Any] = {"lr": 2e-6, "weight_decay": 0.01, "betas": (0.9, 0.999), "eps": 1e-7,
                                     "batch_size": 128}
#: What ``finetune`` can train: both towers, or one of them.
TRAINABLE_TOWERS: tuple[str, ...] = ("both", "image", "text")


@dataclass
class TrainingOptions:
    """How to train; every field has a command-line option of the same name."""

    epochs: int = 10
    batch_size: int = 64  # per process; the contrastive batch is batch_size x processes
    lr: float = 5e-4  # peak learning rate, reached after the warmup
    weight_decay: float = 0.1  # AdamW decay of weight matrices (gains, biases and the logit scale get none)
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int | None = None  # linear warmup; None = 5% of all steps
    grad_clip: float | None = 1.0  # max global gradient norm; None = no clipping
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"  # fp32, bf16 (autocast) or fp16 (autocast + gradient scaling, GPU only)
    num_workers: int = 2  # image-decoding worker processes per training process
    resume: bool = False  # continue the run in the output folder from its last finished epoch
    tensorboard: bool = True
    eval_batch_size: int = 256
    preprocess: str = "targetpad"  # targetpad (CLIP4Cir) or the encoder's own transform
    target_ratio: float = 1.25
    missing: str = "error"  # missing-image policy: error or skip
    progress: bool = True

    def __post_init__(self) -> None:
        from cirlab.runtime import PRECISIONS  # imported here so that the CLI can read defaults without torch

        self.betas = (float(self.betas[0]), float(self.betas[1]))
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch size must be >= 2 for a contrastive loss, got {self.batch_size}"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.warmup_steps is None or self.warmup_steps >= 0,
             f"warmup steps must be >= 0, got {self.warmup_steps}"),
            (self.grad_clip is None or self.grad_clip > 0, f"gradient clip must be > 0, got {self.grad_clip}"),
            (self.num_workers >= 0, f"workers must be >= 0, got {self.num_workers}"),
            (self.eval_batch_size >= 1, f"eval batch size must be >= 1, got {self.eval_batch_size}"),
            (self.precision in PRECISIONS, f"unknown precision {self.precision!r}; use one of {list(PRECISIONS)}"),
            (self.preprocess in PREPROCESS_KINDS,
             f"unknown preprocessing {self.preprocess!r}; use one of {list(PREPROCESS_KINDS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        MissingPolicy.parse(self.missing)

    def identity(self) -> dict[str, Any]:
        """The options a resumed run must share with the run it continues (they decide the result)."""
        data = asdict(self)
        for key in ("device", "precision", "num_workers", "resume", "tensorboard",
                    "eval_batch_size", "progress"):
            data.pop(key)
        data["betas"] = list(self.betas)
        return data

    def settings(self) -> dict[str, Any]:
        """The options that may change across a resume (where and how fast it runs)."""
        return {key: value for key, value in asdict(self).items() if key not in self.identity()}


def resolve_options(options: TrainingOptions | None, overrides: dict[str, Any],
                    defaults: dict[str, Any] | None = None) -> TrainingOptions:
    """``options`` (or the defaults updated with ``defaults``) with keyword ``overrides`` applied and validated."""
    base = dict(options.__dict__) if options is not None else {**TrainingOptions().__dict__, **(defaults or {})}
    unknown = sorted(set(overrides) - set(base))
    if unknown:
        raise ConfigError(f"unknown training options {unknown}; known: {sorted(base)}")
    return TrainingOptions(**{**base, **overrides})


@dataclass
class ContrastOptions:
    """What ``finetune``'s contrastive loss scores each query against, besides its own target.

    Always the batch's other targets: under ``torchrun`` those of every process, gathered with their
    gradients (open_clip's ``--gather-with-grad --local-loss``), so N processes at batch b compute the
    loss of one process at batch N·b; ``gather_batch=False`` keeps each process's own slice (cheaper, not
    equal), as the combiner stage's config key of the same name does. With a sampler (``negatives``),
    also ``num_negatives`` items mined per query over the training gallery, whose features are re-encoded
    every ``refresh_every`` steps (0: once, before the first step); see :mod:`cirlab.encoder_training.mining`.
    """

    negatives: str = IN_BATCH  # a cirlab.negatives sampler name, or "in-batch" to mine nothing
    negatives_options: dict[str, Any] = field(default_factory=dict)  # keyword options of the sampler
    num_negatives: int = 16  # negatives mined per query (k), as in combiner training
    refresh_every: int = 50  # optimiser steps between gallery refreshes; 0: encode the gallery once
    gather_batch: bool = True  # under torchrun, score against every process's targets (with gradients)

    def __post_init__(self) -> None:
        self.negatives_options = dict(self.negatives_options or {})
        checks = [
            (self.num_negatives >= 1, f"the number of negatives per query must be >= 1, got {self.num_negatives}"),
            (self.refresh_every >= 0, f"refresh interval must be >= 0 steps (0: never refresh), "
                                      f"got {self.refresh_every}"),
            (self.mines or not self.negatives_options,
             f"sampler options {sorted(self.negatives_options)} given without a sampler (--negatives)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def mines(self) -> bool:
        """Whether negatives are mined from the gallery (a sampler is chosen)."""
        return self.negatives != IN_BATCH

    def check_sampler(self) -> None:
        """Refuse an unknown sampler or sampler option in one line, before any work (imports torch)."""
        if not self.mines:
            return
        from cirlab.negatives import SAMPLERS

        SAMPLERS.get(self.negatives)
        unknown = sorted(set(self.negatives_options) - set(SAMPLERS.options(self.negatives)))
        if unknown:
            known = ", ".join(SAMPLERS.options(self.negatives)) or "none"
            raise ConfigError(f"negative sampler {self.negatives!r}: unknown options {unknown}; its options are: "
                              f"{known}")

    def identity(self) -> dict[str, Any]:
        """What a resumed run must share with the run it continues: empty for the plain recipe (in-batch,
        gathered), so that such runs keep the identity they had before negatives could be mined."""
        if not self.mines:
            return {} if self.gather_batch else {"contrast": {"negatives": self.negatives, "gather_batch": False}}
        return {"contrast": asdict(self)}
