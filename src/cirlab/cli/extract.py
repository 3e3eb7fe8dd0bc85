"""Encode every image and every caption form of a data set once, into a feature cache.

Training, evaluation and search read only the cache, so the CLIP encoders run here and nowhere
else in the frozen-encoder pipeline. Examples:

  cirlab extract --data DATA --model RN50x4 --pretrained openai --out features/rn50x4
  cirlab extract --data DATA --model cirlab-vit-tiny --out features/tiny
  cirlab extract --data DATA --checkpoint runs/finetune --out features/finetuned
  cirlab extract --data CIRR --dataset cirr --model RN50x4 --out features/cirr-rn50x4

Without --pretrained, open_clip architectures use the `openai` weights and cirlab's small models
(cirlab-vit-tiny, cirlab-rn-tiny, cirlab-vit-small) a seeded random initialisation; `--pretrained
none` asks for random initialisation explicitly. With --checkpoint, --model defaults to the
architecture the checkpoint names.

Running it again with the same data and encoder does nothing; with a different one it refuses
unless --overwrite. An interrupted run resumes from its finished chunks. Under torchrun
(`torchrun --nproc_per_node N -m cirlab extract ...`) the processes share the work.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cirlab.cli.options import (
    add_categories,
    add_dataset,
    add_device,
    add_image_handling,
    add_out,
    add_precision,
    add_seed,
    add_workers,
    describe,
    given,
    signature_default,
)

#: Where the defaults of the options left out come from.
EXTRACT = "cirlab.features.extract:extract_features"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab extract``."""
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="data set folder (FashionIQ or CIRR layout)")
    add_dataset(parser)
    add_out(parser, "feature cache folder to write", required=True)
    action = parser.add_argument("--model", default=None, metavar="NAME")
    describe(action, "open_clip architecture or cirlab small model", lambda: f"{_default_model()}, or the checkpoint's")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", default=None, metavar="TAG",
                         help="open_clip pretrained tag or weights file; 'none' = random init "
                              "(default: openai for open_clip models, none for cirlab small models)")
    weights.add_argument("--checkpoint", type=Path, default=None, metavar="DIR",
                         help="cirlab encoder checkpoint folder")
    add_seed(parser, 0, "a random initialisation")
    add_image_handling(parser, defaults_of=EXTRACT)
    add_categories(parser)
    action = parser.add_argument("--batch-size", type=int, default=None, metavar="N")
    describe(action, "images, or triplets' caption forms, per forward pass", signature_default(EXTRACT, "batch_size"))
    add_workers(parser, min(4, os.cpu_count() or 1), default_text="4, or fewer CPU cores")
    action = parser.add_argument("--chunk-size", type=int, default=None, metavar="N")
    describe(action, "images or triplets per resumable chunk", signature_default(EXTRACT, "chunk_size"))
    add_device(parser)
    add_precision(parser, default=None, default_text=signature_default(EXTRACT, "precision"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cache of other data or model")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab extract``: status lines on stderr, the cache's summary on stdout."""

    from cirlab.distributed import is_main_process
    from cirlab.features.extract import extract_features, summary_line

    spec = spec_from_args(args.model, args.pretrained, args.checkpoint, args.seed)
    cache = extract_features(args.data, spec, args.out, dataset=args.dataset, num_workers=args.workers,
                             device=args.device, categories=args.categories, overwrite=args.overwrite,
                             **given(args, "preprocess", "target_ratio", "missing", "batch_size", "chunk_size",
                                     "precision"))
    if is_main_process():
        print(summary_line(cache))
    return 0


def spec_from_args(model: str | None, pretrained: str | None, checkpoint: Path | None, seed: int = 0):
    """The :class:`~cirlab.encoders.EncoderSpec` the command-line options describe."""
    from cirlab.encoders import EncoderSpec, is_small_model, read_checkpoint_config

    if checkpoint is not None:
        name = model or read_checkpoint_config(checkpoint)["model"]
        return EncoderSpec(model=name, pretrained=None, checkpoint=checkpoint, seed=seed)
    name = model or EncoderSpec.model
    if pretrained is None:
        pretrained = None if is_small_model(name) else "openai"
    elif pretrained.lower() == "none":
        pretrained = None
    return EncoderSpec(model=name, pretrained=pretrained, seed=seed)


def _default_model() -> str:
    from cirlab.encoders import EncoderSpec

    return EncoderSpec.model
