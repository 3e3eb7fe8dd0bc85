"""Options shared by ``pretrain`` and ``finetune``: schedule, optimiser, runtime and data handling."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cirlab.data import PREPROCESS_KINDS, MissingPolicy
from cirlab.errors import ConfigError

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
