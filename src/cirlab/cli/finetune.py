"""Adapt CLIP encoders on composed-retrieval triplets (CLIP4Cir stage one).

The query of a triplet is normalize(image features of the reference + text features of its caption),
scored against the batch's target image features with a contrastive cross-entropy (logit scale 100).
Caption forms are drawn per sample as in CLIP4Cir; images are target-padded. Start from real CLIP
weights (--model RN50x4 --pretrained openai, which must be in the local open_clip cache), from a
`cirlab pretrain` checkpoint (--checkpoint DIR), or from a random initialisation (--pretrained none).
Val recall (reference + caption → target, gallery = the val split's images) is reported before
training and after every epoch. The output folder is an encoder checkpoint for `cirlab extract`.

Example:
  cirlab finetune --data data/synth --checkpoint runs/pretrain --out runs/finetune --lr 1e-5 --epochs 5
  cirlab finetune --data data/fashioniq --model RN50x4 --pretrained openai --out runs/clip4cir --precision bf16
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cirlab.cli.options import add_out
from cirlab.cli.pretrain import add_training_arguments, pretrained_tag, training_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab finetune``."""
    from cirlab.encoder_training.options import FINETUNE_DEFAULTS, TRAINABLE_TOWERS

    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="FashionIQ-layout data set")
    add_out(parser, "run folder (becomes the encoder checkpoint)", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, metavar="DIR", help="cirlab encoder checkpoint to start from")
    source.add_argument("--model", metavar="NAME", help="open_clip architecture to start from (with --pretrained)")
    parser.add_argument("--pretrained", default="openai", metavar="TAG",
                        help="open_clip pretrained tag for --model, or 'none' for a random init (default: openai)")
    parser.add_argument("--towers", default="both", choices=list(TRAINABLE_TOWERS),
                        help="which encoders to train (default: both)")
    add_training_arguments(parser, FINETUNE_DEFAULTS)


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab finetune``: progress on stderr, the result on stdout."""
    from cirlab.distributed import is_main_process
    from cirlab.encoder_training.finetuning import finetune

    result = finetune(args.data, args.out, checkpoint=args.checkpoint, model=args.model,
                      pretrained=pretrained_tag(args.pretrained), towers=args.towers, categories=args.categories,
                      **training_overrides(args))
    if is_main_process():
        print(result.summary())
    return 0
