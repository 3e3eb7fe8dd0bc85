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

#: Flags that set one config key each: (flag, config key, type, help).
FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--features", "features", str, "feature cache folder"),
    ("--out", "out", str, "run folder (checkpoints, logs, metrics)"),
    ("--combiner", "combiner", str, "combiner name: combiner, attention-fusion, sum"),
    ("--loss", "loss", str, "loss name: contrastive, triplet"),
    ("--negatives", "negatives", str, "negative sampler name (random, category, semi-hard, hard, ...) or in-batch"),
    ("--num-negatives", "num_negatives", int, "negatives mined per query (k)"),
    ("--categories", "categories", str, "comma-separated categories to train on (default: all in the cache)"),
    ("--epochs", "epochs", int, "number of epochs"),
    ("--batch-size", "batch_size", int, "triplets per step, over all processes"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay"),
    ("--schedule", "schedule", str, "learning-rate schedule: cosine or constant"),
    ("--warmup-steps", "warmup_steps", int, "linear warm-up steps"),
    ("--grad-clip", "grad_clip", float, "clip the gradient norm to this value (0: off)"),
    ("--eval-every", "eval_every", int, "evaluate every N epochs"),
    ("--device", "device", str, "auto, cpu, cuda, cuda:N"),
    ("--precision", "precision", str, "fp32, bf16 or fp16 (GPU only)"),
    ("--seed", "seed", int, "random seed"),
    ("--stop-after-epochs", "stop_after_epochs", int, "end this invocation after this epoch (resumable)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab train``."""
    parser.add_argument("--config", default=None, help="YAML config file or shipped config name")
    metavars = {"features": "DIR", "out": "RUN_DIR", "categories": "LIST", "device": "DEVICE",
                "precision": "PRECISION", "schedule": "SCHEDULE"}
    for flag, key, kind, help_text in FLAGS:
        metavar = metavars.get(key) or {str: "NAME", int: "N", float: "X"}[kind]
        parser.add_argument(flag, dest=key, type=kind, default=None, metavar=metavar, help=help_text)
    parser.add_argument("--resume", action="store_true", default=None, help="continue the run in --out")
    parser.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None,
                        help="do not write TensorBoard logs")
    parser.add_argument("--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (repeatable), e.g. --set negatives_options.ratios=[0.5,0.3,0.2]")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab train``."""
    import logging
    import os

    from cirlab.training import load_config, train
    from cirlab.training.logging import CONFIG_FILE

    _configure_logging()
    flags = [(key, getattr(args, key)) for _, key, _, _ in FLAGS if getattr(args, key) is not None]
    flags += [(key, getattr(args, key)) for key in ("resume", "tensorboard") if getattr(args, key) is not None]
    base, invocation = args.config, []
    if base is None and args.resume and args.out and (Path(args.out) / CONFIG_FILE).is_file():
        base = str(Path(args.out) / CONFIG_FILE)
        invocation = [("stop_after_epochs", None)]  # the earlier invocation's stop does not carry over
    config = load_config(base, [*invocation, *flags, *args.set_options])
    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        logging.getLogger("cirlab.training").info(
            "%s: %s after %d epochs (%d steps); best validation headline %.2f at epoch %d (in %s)",
            result.run_dir, result.status, result.epochs_completed, result.steps, result.best_headline,
            result.best_epoch, result.run_dir / "best")
    return 0


def _configure_logging() -> None:
    """Messages of cirlab's loggers on stderr, from process 0 only (unless logging is already set up)."""
    import logging
    import os

    root = logging.getLogger()
    if not root.handlers:
        main = int(os.environ.get("RANK", "0")) == 0
        logging.basicConfig(level=logging.INFO if main else logging.WARNING, format="%(message)s")
