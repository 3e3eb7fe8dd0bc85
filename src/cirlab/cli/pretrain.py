"""CLIP-style contrastive pretraining of an open_clip model on a data set's tags.

Every train-split image (all categories) is paired with a sentence built from its attribute tags and
its category ("a light blue striped dress with long sleeves, knee length and v-neck"); the model
learns to match them with open_clip's ClipLoss. Held-out val images measure image→description and
description→image Recall@1/5/10 after every epoch, next to chance. The output folder is an encoder
checkpoint (`cirlab extract --checkpoint OUT`), with per-epoch checkpoints for --resume, steps.csv,
epochs.csv, TensorBoard logs and result.json.

Example:
  cirlab pretrain --data data/synth --model cirlab-vit-tiny --out runs/pretrain --epochs 20
  torchrun --nproc_per_node 4 -m cirlab pretrain --data data/synth --out runs/pretrain
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cirlab.cli.options import (
    add_categories,
    add_device,
    add_image_handling,
    add_out,
    add_precision,
    add_seed,
    add_workers,
)

DEFAULT_MODEL = "cirlab-vit-tiny"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab pretrain``."""
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="FashionIQ-layout data set with tags/")
    add_out(parser, "run folder (becomes the encoder checkpoint)", required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                        help=f"open_clip architecture or cirlab small model (default: {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", default="none", metavar="TAG",
                        help="open_clip pretrained tag to start from, or 'none' for a random init (default: none)")
    add_training_arguments(parser, {})


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab pretrain``: progress on stderr, the result on stdout."""
    from cirlab.distributed import is_main_process
    from cirlab.encoder_training.pretraining import pretrain

    result = pretrain(args.data, args.out, model=args.model, pretrained=pretrained_tag(args.pretrained),
                      categories=args.categories, **training_overrides(args))
    if is_main_process():
        print(result.summary())
    return 0


# ----------------------------------------------------------------- shared with `cirlab finetune`
def add_training_arguments(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """The schedule, optimiser, runtime and data options of both encoder-training commands; their defaults
    are :class:`~cirlab.encoder_training.options.TrainingOptions`' updated with ``defaults``."""
    from dataclasses import fields

    from cirlab.encoder_training.options import TrainingOptions

    d = {**{f.name: f.default for f in fields(TrainingOptions)}, **defaults}
    group = parser.add_argument_group("training")
    add_categories(group)
    group.add_argument("--epochs", type=int, default=d["epochs"], metavar="N", help=f"epochs (default: {d['epochs']})")
    group.add_argument("--batch-size", type=int, default=d["batch_size"], metavar="N",
                       help=f"samples per process and step (default: {d['batch_size']})")
    group.add_argument("--lr", type=float, default=d["lr"], metavar="X",
                       help=f"peak learning rate (default: {d['lr']})")
    group.add_argument("--weight-decay", type=float, default=d["weight_decay"], metavar="X",
                       help=f"AdamW weight decay (default: {d['weight_decay']})")
    group.add_argument("--warmup-steps", type=int, default=d["warmup_steps"], metavar="N",
                       help="linear warmup steps (default: 5%% of all)")
    group.add_argument("--grad-clip", type=float, default=d["grad_clip"], metavar="X",
                       help=f"max gradient norm, 0 = no clipping (default: {d['grad_clip']})")
    add_seed(group, d["seed"], "the data order, augmentation and initial weights")
    add_device(group, d["device"])
    add_precision(group, d["precision"])
    add_workers(group, d["num_workers"])
    group.add_argument("--eval-batch-size", type=int, default=d["eval_batch_size"], metavar="N",
                       help=f"batch size of the held-out evaluation (default: {d['eval_batch_size']})")
    add_image_handling(group, d["preprocess"], d["target_ratio"], d["missing"])
    group.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~cirlab.encoder_training.options.TrainingOptions` fields given by the parsed options."""
    return {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
        "warmup_steps": args.warmup_steps, "grad_clip": args.grad_clip or None, "seed": args.seed,
        "device": args.device, "precision": args.precision, "num_workers": args.workers,
        "eval_batch_size": args.eval_batch_size, "preprocess": args.preprocess, "target_ratio": args.target_ratio,
        "missing": args.missing, "tensorboard": not args.no_tensorboard,
        "resume": args.resume,
    }


def pretrained_tag(value: str | None) -> str | None:
    """``none`` (any case) or an empty value → ``None`` (random initialisation)."""
    return None if value is None or value.strip().lower() in ("", "none") else value
