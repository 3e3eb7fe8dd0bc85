"""Training configuration: one dataclass, loaded from YAML plus overrides, checked field by field.

A run is described entirely by a :class:`TrainConfig`. It comes from a YAML file (a path, or the
name of a config shipped in ``cirlab/configs``), then command-line flags and ``--set key=value``
overrides are applied on top. Every problem is reported as a one-line :class:`ConfigError` that
names the file and line (or the override) and the key: a YAML syntax error, an unknown key (with the
closest known one), or a value of the wrong type. The reading itself is :mod:`cirlab.config`'s, shared
with every command's settings; this module adds what is particular to training: the shipped configs, and
that choosing another combiner, loss or sampler than the file's starts that component from its own defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cirlab.config import (
    Overrides,
    apply_overrides,
    field_default,
    field_names,
    from_dict,
    parse_overrides,
    read_yaml,
)
from cirlab.errors import ConfigError

#: Learning-rate schedules the trainer knows.
SCHEDULES: tuple[str, ...] = ("cosine", "constant")

#: ``negatives`` value meaning "mine nothing": the loss gets ``negatives=None`` and uses the other
#: targets of the batch, as CLIP4Cir's combiner training does.
IN_BATCH = "in-batch"

#: Keys that may differ between a checkpoint's config and the config that resumes it. ``out`` names the
#: run folder itself (however it is spelled) and the feature cache is checked by its identity, not its path.
RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {"epochs", "stop_after_epochs", "resume", "device", "eval_batch_size", "tensorboard", "log_every", "features",
     "out", "seeds"})

#: Components chosen by name, each with the config key of its options.
COMPONENT_OPTIONS: dict[str, str] = {"combiner": "combiner_options", "loss": "loss_options",
                                     "negatives": "negatives_options"}


@dataclass
class TrainConfig:
    """Everything that defines a combiner training run (see ``cirlab/configs/*.yaml`` for examples)."""

    # ---- inputs and outputs
    features: str | None = None  # feature cache folder (written by `cirlab extract`); required
    out: str | None = None  # run folder for checkpoints, logs and metrics; required
    categories: list[str] | None = None  # categories trained on; None = every cached category with a train split
    val_categories: list[str] | None = None  # categories evaluated; None = the training categories
    val_split: str = "val"  # split of the validation protocol (gallery = its images, queries = its triplets)

    # ---- components, each chosen by registry name
    combiner: str = "combiner"  # cirlab.combiners name: combiner (CLIP4Cir), attention-fusion, sum
    combiner_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of build_combiner
    loss: str = "contrastive"  # cirlab.losses name: contrastive, hn-nce, triplet
    loss_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of build_loss
    negatives: str = "random"  # cirlab.negatives sampler name, or "in-batch" to mine nothing
    negatives_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of build_sampler
    num_negatives: int = 16  # negatives mined per query over the whole training gallery (k)

    # ---- optimisation
    epochs: int = 10  # passes over the training triplets; 0 only evaluates the untrained combiner
    batch_size: int = 256  # triplets per optimiser step, over all processes together
    # Under torchrun, the contrastive losses (contrastive, hn-nce) score each process's queries against the targets
    # of the whole global batch, gathered with their gradients, so that N processes compute one process's loss
    # (open_clip's --gather-with-grad --local-loss).
    gather_batch: bool = True  # gather the global batch's targets under torchrun; false: own slice only (cheaper)
    drop_last: bool = True  # drop each epoch's last incomplete batch (CLIP4Cir does)
    lr: float = 1e-4  # peak learning rate of AdamW
    weight_decay: float = 0.0  # AdamW decoupled weight decay (0 makes AdamW the same as Adam)
    schedule: str = "cosine"  # learning-rate schedule after warm-up: cosine (to min_lr_ratio * lr) or constant
    warmup_steps: int = 0  # steps of linear warm-up from 0 to lr
    min_lr_ratio: float = 0.0  # floor of the cosine schedule, as a fraction of lr
    grad_clip: float = 0.0  # clip the gradients' global L2 norm to this value; 0 disables clipping
    caption_forms: list[int] | None = None  # training caption forms drawn uniformly; None: every form the cache holds

    # ---- evaluation
    eval_every: int = 1  # evaluate on the validation protocol every this many epochs (and after the last)
    eval_batch_size: int = 1024  # queries per batch during evaluation

    # ---- runtime
    device: str = "auto"  # auto (cuda when present), cpu, cuda, cuda:1 ...
    precision: str = "fp32"  # autocast precision of the training step: fp32, bf16 (CPU and GPU), fp16 (GPU)
    seed: int = 0  # seeds the epoch order, caption forms, negatives, dropout and initial weights
    seeds: int = 3  # runs per strategy in `cirlab compare` (seeds seed, seed + 1, ...); `cirlab train` runs one
    log_every: int = 1  # write every this many steps to steps.csv and TensorBoard
    tensorboard: bool = True  # also log to RUN_DIR/tensorboard
    resume: bool = False  # continue the run in `out` from its last checkpoint (start fresh if there is none)
    stop_after_epochs: int | None = None  # end this invocation after this epoch, leaving the run resumable

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready values."""
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Check values that do not depend on the registries; return ``self``."""
        if not self.features:
            raise ConfigError("no feature cache given: pass --features DIR or set `features:` in the config")
        if not self.out:
            raise ConfigError("no run folder given: pass --out RUN_DIR or set `out:` in the config")
        positive = {"batch_size": self.batch_size, "eval_every": self.eval_every,
                    "eval_batch_size": self.eval_batch_size, "log_every": self.log_every}
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"config key {key} must be at least 1, got {value}")
        if self.epochs < 0:
            raise ConfigError(f"config key epochs must be at least 0, got {self.epochs}")
        if self.lr <= 0:
            raise ConfigError(f"config key lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ConfigError("config keys weight_decay, grad_clip and warmup_steps must not be negative")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"config key min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        from cirlab.runtime import PRECISIONS  # here, so that reading a config does not import torch

        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        if self.caption_forms is not None and (not self.caption_forms or any(
                isinstance(form, bool) or not isinstance(form, int) or form < 0 for form in self.caption_forms)):
            raise ConfigError(f"config key caption_forms must list caption form indices (0, 1, ...) or be null for "
                              f"every form of the cache, got {self.caption_forms}")
        if self.negatives != IN_BATCH and self.num_negatives < 1:
            raise ConfigError(f"config key num_negatives must be at least 1 with negatives={self.negatives!r}")
        if self.stop_after_epochs is not None and self.stop_after_epochs < 1:
            raise ConfigError(f"config key stop_after_epochs must be at least 1, got {self.stop_after_epochs}")
        if self.seeds < 1:
            raise ConfigError(f"config key seeds must be at least 1, got {self.seeds}")
        return self


def config_keys() -> list[str]:
    """Names of every config key."""
    return field_names(TrainConfig)


def shipped_configs() -> list[str]:
    """Names of the configs shipped with cirlab (usable as ``--config NAME``)."""
    folder = resources.files("cirlab").joinpath("configs")
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def resolve_config_path(path_or_name: str | Path) -> Path:
    """A config file's path: ``path_or_name`` itself when it exists, else the shipped config of that name."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if str(path.parent) == "." and name in shipped_configs():
        return Path(str(resources.files("cirlab").joinpath("configs", f"{name}.yaml")))
    shipped = ", ".join(shipped_configs()) or "none"
    raise ConfigError(f"{path_or_name}: no such config file (shipped configs: {shipped})")


def load_config(path: str | Path | None = None, overrides: Overrides | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from a YAML file (or none) plus overrides, checking keys and types.

    ``path`` is a YAML file or the name of a shipped config. ``overrides`` is a mapping of config keys
    to values, or a sequence of ``(key, value)`` pairs (command-line flags) and ``"key=value"`` strings
    (``--set``, values read as YAML). A dotted key such as ``combiner_options.hidden_dim`` sets one
    entry of an options mapping. Overrides are applied in order, after the file, except that an
    override choosing another combiner, loss or sampler than the file's drops the file's options of
    that component (they belong to the one it replaces): the new one starts from its own defaults,
    with the options given as overrides on top. Values that need the whole config (a feature cache and
    run folder are given...) are checked by :meth:`TrainConfig.validate`.
    """
    source = str(path) if path is not None else "overrides"
    base = read_yaml(resolve_config_path(path), TrainConfig) if path is not None else {}
    items = parse_overrides(overrides)
    values = apply_overrides(TrainConfig, base, items)
    for component, options_key in COMPONENT_OPTIONS.items():
        chosen = values.get(component, field_default(TrainConfig, component))
        if chosen != base.get(component, field_default(TrainConfig, component)):
            own = apply_overrides(TrainConfig, {}, [item for item in items if item.field == options_key])
            values[options_key] = own.get(options_key) or {}
    return config_from_dict(values, source=source)


def config_from_dict(values: Mapping[str, Any], source: str = "config",
                     lines: Mapping[str, int] | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from a mapping, checking keys and value types (not yet :meth:`validate`)."""
    return from_dict(TrainConfig, values, source=source, lines=lines)
