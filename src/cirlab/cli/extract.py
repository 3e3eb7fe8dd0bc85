"""Encode every image and every caption form of a data set once, into a feature cache.

Training, evaluation and search read only the cache, so the CLIP encoders run here and nowhere
else in the frozen-encoder pipeline. Examples:

  cirlab extract --data DATA --model RN50x4 --pretrained openai --out features/rn50x4
  cirlab extract --data DATA --model cirlab-vit-tiny --out features/tiny
  cirlab extract --data DATA --checkpoint runs/finetune --out features/finetuned

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab extract``."""
    parser.add_argument("--data", type=Path, required=True, help="data set folder in the FashionIQ layout")
    parser.add_argument("--out", type=Path, required=True, help="feature cache folder to write")
    parser.add_argument("--model", default=None,
                        help="open_clip architecture or cirlab small model (default: RN50x4, or the checkpoint's)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", default=None,
                         help="open_clip pretrained tag or weights file; 'none' = random init "
                              "(default: openai for open_clip models, none for cirlab small models)")
    weights.add_argument("--checkpoint", type=Path, default=None, help="cirlab encoder checkpoint folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of a random initialisation (default 0)")
    parser.add_argument("--preprocess", choices=("targetpad", "encoder"), default="targetpad",
                        help="targetpad (CLIP4Cir, default) or the encoder's own transform")
    parser.add_argument("--target-ratio", type=float, default=1.25, help="target-pad aspect ratio (default 1.25)")
    parser.add_argument("--missing", choices=("error", "skip"), default="error",
                        help="missing or corrupt images: stop (default) or leave out with counts")
    parser.add_argument("--categories", nargs="+", default=None, help="categories to encode (default: all present)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="images, or triplets' caption forms, per forward pass (default 64)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="DataLoader processes decoding images (default: 4, or fewer CPU cores)")
    parser.add_argument("--chunk-size", type=int, default=1024, help="images or triplets per resumable chunk")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast precision")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cache of other data or model")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab extract``."""
    from cirlab.features.extract import extract_features, summary_line

    spec = spec_from_args(args.model, args.pretrained, args.checkpoint, args.seed)
    cache = extract_features(args.data, spec, args.out, preprocess=args.preprocess, target_ratio=args.target_ratio,
                             missing=args.missing, batch_size=args.batch_size, num_workers=args.workers,
                             device=args.device, precision=args.precision, categories=args.categories,
                             overwrite=args.overwrite, chunk_size=args.chunk_size, echo=print)
    if _is_main_process():
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


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"
