"""Train a combiner on cached features with a negative-sampling strategy.

  cirlab train --features CACHE --combiner combiner --loss triplet --negatives hard --out RUN_DIR
  cirlab train --config synthetic --features CACHE --out RUN_DIR --set loss_options.margin=0.1
  cirlab train --resume --out RUN_DIR              (continue a stopped or killed run)

Settings come from the YAML config (a file, or a shipped name such as `synthetic` or
`fashioniq-rn50x4`), then the flags below, then `--set key=value` (dotted keys reach option
mappings). With `--resume` and no `--config`, the run's own config.json is the base. The run folder
receives best/ and last/ checkpoints, config.json, metrics.json, epochs.csv, steps.csv and
TensorBoard logs. Under torchrun (`python -m torch.distributed.run --nproc_per_node N -m cirlab train ...`)
each process trains on its share of every batch and process 0 evaluates and writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cirlab.cli.options import (
    add_categories,
    add_component,
    add_config,
    add_device,
    add_features,
    add_out,
    add_precision,
    add_seed,
    add_set,
    describe,
)

#: Config keys set by a flag of the same name (``--batch-size`` sets ``batch_size``): (key, type, help).
PLAIN_FLAGS: tuple[tuple[str, Any, str], ...] = (
    ("num_negatives", int, "negatives mined per query (k)"),
    ("epochs", int, "number of epochs"),
    ("batch_size", int, "triplets per step, over all processes"),
    ("lr", float, "peak learning rate"),
    ("weight_decay", float, "AdamW weight decay"),
    ("schedule", str, "learning-rate schedule after the warm-up"),
    ("warmup_steps", int, "linear warm-up steps"),
    ("grad_clip", float, "clip the gradient norm to this value, 0 for no clipping"),
    ("eval_every", int, "evaluate every N epochs"),
    ("stop_after_epochs", int, "end this invocation after this epoch (the run stays resumable)"),
)

#: Every config key that has a flag, in the order the flags apply (before --set).
FLAG_KEYS: tuple[str, ...] = ("features", "out", "combiner", "loss", "negatives", "categories", "device",
                              "precision", "seed", *(key for key, _, _ in PLAIN_FLAGS), "resume", "tensorboard")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab train``; a flag left out keeps the config's value, and the defaults shown are
    :class:`~cirlab.training.config.TrainConfig`'s, which apply where the config does not set the key."""
    add_config(parser, default=None)
    add_features(parser)
    add_out(parser, "run folder (checkpoints, logs, metrics)", metavar="RUN_DIR")
    add_component(parser, "combiner", "combiner", config_default("combiner"))
    add_component(parser, "loss", "loss", config_default("loss"))
    add_component(parser, "negatives", "negative sampler", config_default("negatives"))
    add_categories(parser, default_text="every category of the cache with a train split")
    add_device(parser, default=None, default_text=config_default("device"))
    add_precision(parser, default=None, default_text=config_default("precision"))
    add_seed(parser, None, "the epoch order, caption forms, negatives and initial weights",
             default_text=config_default("seed"))
    metavars = {int: "N", float: "X", str: "NAME"}
    for key, kind, help_text in PLAIN_FLAGS:
        action = parser.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, default=None,
                                     metavar=metavars[kind])
        describe(action, _schedules_help(help_text) if key == "schedule" else help_text, config_default(key))
    parser.add_argument("--resume", action="store_true", default=None,
                        help="continue the run in --out (from any working directory; without --config, the "
                             "run's own config.json is the base)")
    parser.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None,
                        help="do not write TensorBoard logs")
    add_set(parser)


def config_default(key: str) -> Any:
    """A function giving the default of config key ``key`` for a help text (it imports the trainer)."""
    def shown() -> str:
        from cirlab.config import field_default
        from cirlab.training.config import TrainConfig

        value = field_default(TrainConfig, key)
        return "none" if value is None else str(value)

    return shown


def _schedules_help(text: str) -> Any:
    def shown() -> str:
        from cirlab.training.config import SCHEDULES

        return f"{text}: {', '.join(SCHEDULES)}"

    return shown


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab train``: train, then print the result on stdout (the main process only)."""
    import dataclasses

    from cirlab.distributed import is_main_process
    from cirlab.engine.checkpoint import BEST
    from cirlab.engine.runlog import CONFIG_FILE
    from cirlab.training import load_config, train

    flags = [(key, getattr(args, key)) for key in FLAG_KEYS if getattr(args, key) is not None]
    base, invocation = args.config, []
    if base is None and args.resume and args.out and (Path(args.out) / CONFIG_FILE).is_file():
        base = str(Path(args.out) / CONFIG_FILE)
        invocation = [("stop_after_epochs", None)]  # the earlier invocation's stop does not carry over
    config = load_config(base, [*invocation, *flags, *args.set_options])
    # Absolute paths in the run's config.json, so that the run resumes from any working directory.
    config = dataclasses.replace(config, features=absolute(config.features), out=absolute(config.out))
    result = train(config)
    if is_main_process():
        print(f"{result.run_dir}: {result.status} after {result.epochs_completed} epochs ({result.steps} steps); "
              f"best validation headline {result.best_headline:.2f} at epoch {result.best_epoch} "
              f"(in {result.run_dir / BEST})")
    return 0


def absolute(path: str | None) -> str | None:
    """``path`` made absolute and normal (``runs/x/``, ``./runs/x`` → ``/cwd/runs/x``); ``None`` stays."""
    return str(Path(path).expanduser().resolve()) if path else path
