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
import os
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "cirlab-vit-tiny"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab pretrain``."""
    parser.add_argument("--data", type=Path, required=True, help="FashionIQ-layout data set with tags/")
    parser.add_argument("--out", type=Path, required=True, help="run folder (becomes the encoder checkpoint)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"open_clip architecture or cirlab small model (default: {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", default="none",
                        help="open_clip pretrained tag to start from, or 'none' for a random init (default: none)")
    add_training_arguments(parser, {})


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab pretrain``."""
    from cirlab.encoder_training.pretraining import pretrain

    result = pretrain(args.data, args.out, model=args.model, pretrained=pretrained_tag(args.pretrained),
                      categories=args.categories, **training_overrides(args))
    if is_main_process():
        print(result.summary())
    return 0


# ----------------------------------------------------------------- shared with `cirlab finetune`
def add_training_arguments(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """The schedule, optimiser, runtime and data options of both encoder-training commands."""
    from dataclasses import fields

    from cirlab.encoder_training.options import TrainingOptions

    d = {**{f.name: f.default for f in fields(TrainingOptions)}, **defaults}
    group = parser.add_argument_group("training")
    group.add_argument("--categories", nargs="+", default=None, help="categories to use (default: all present)")
    group.add_argument("--epochs", type=int, default=d["epochs"], help=f"epochs (default: {d['epochs']})")
    group.add_argument("--batch-size", type=int, default=d["batch_size"],
                       help=f"samples per process and step (default: {d['batch_size']})")
    group.add_argument("--lr", type=float, default=d["lr"], help=f"peak learning rate (default: {d['lr']})")
    group.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                       help=f"AdamW weight decay (default: {d['weight_decay']})")
    group.add_argument("--warmup-steps", type=int, default=None, help="linear warmup steps (default: 5%% of all)")
    group.add_argument("--grad-clip", type=float, default=d["grad_clip"],
                       help=f"max gradient norm, 0 = no clipping (default: {d['grad_clip']})")
    group.add_argument("--seed", type=int, default=d["seed"], help=f"random seed (default: {d['seed']})")
    group.add_argument("--device", default=d["device"], help="auto, cpu, cuda, cuda:1 ... (default: auto)")
    group.add_argument("--precision", default=d["precision"], choices=["fp32", "bf16", "fp16"],
                       help="fp32, or bf16/fp16 autocast (default: fp32)")
    group.add_argument("--workers", type=int, default=d["num_workers"],
                       help=f"image-loading workers per process (default: {d['num_workers']})")
    group.add_argument("--eval-batch-size", type=int, default=d["eval_batch_size"],
                       help=f"batch size of the held-out evaluation (default: {d['eval_batch_size']})")
    group.add_argument("--preprocess", default=d["preprocess"], choices=["targetpad", "encoder"],
                       help="image preprocessing (default: targetpad)")
    group.add_argument("--target-ratio", type=float, default=d["target_ratio"],
                       help=f"target-pad aspect ratio (default: {d['target_ratio']})")
    group.add_argument("--missing", default=d["missing"], choices=["error", "skip"],
                       help="what to do with missing images (default: error)")
    group.add_argument("--keep-checkpoints", type=int, default=d["keep_checkpoints"],
                       help=f"epoch checkpoints to keep (default: {d['keep_checkpoints']})")
    group.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~cirlab.encoder_training.options.TrainingOptions` fields given by the parsed options."""
    return {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
        "warmup_steps": args.warmup_steps, "grad_clip": args.grad_clip or None, "seed": args.seed,
        "device": args.device, "precision": args.precision, "num_workers": args.workers,
        "eval_batch_size": args.eval_batch_size, "preprocess": args.preprocess, "target_ratio": args.target_ratio,
        "missing": args.missing, "keep_checkpoints": args.keep_checkpoints, "tensorboard": not args.no_tensorboard,
        "resume": args.resume,
    }


def pretrained_tag(value: str | None) -> str | None:
    """``none`` (any case) or an empty value → ``None`` (random initialisation)."""
    return None if value is None or value.strip().lower() in ("", "none") else value


def is_main_process() -> bool:
    """False on the non-zero ranks of a ``torchrun`` launch, which stay quiet."""
    return os.environ.get("RANK", "0") == "0"
