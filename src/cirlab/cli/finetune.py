"""Adapt CLIP encoders on composed-retrieval triplets (CLIP4Cir stage one).

The query of a triplet is normalize(image features of the reference + text features of its caption),
scored against the batch's target image features with a contrastive cross-entropy (logit scale 100).
Caption forms are drawn per sample as in CLIP4Cir; images are target-padded. Start from real CLIP
weights (--model RN50x4 --pretrained openai, which must be in the local open_clip cache), from a
`cirlab pretrain` checkpoint (--checkpoint DIR), or from a random initialisation (--pretrained none).
Val recall (reference + caption → target, gallery = the val split's images) is reported before
training and after every epoch. The output folder is an encoder checkpoint for `cirlab extract`.

With --negatives, each query also gets --num-negatives negatives mined by that sampler over the training
gallery, whose image features are re-encoded every --refresh-every steps (0: once, before the first step);
the run log records how stale the gallery was (steps since the refresh, drift of its features). Under
torchrun every query is scored against every process's targets (--no-gather-batch: its own process's only).

Example:
  cirlab finetune --data data/synth --checkpoint runs/pretrain --out runs/finetune --lr 1e-5 --epochs 5
  cirlab finetune --data data/synth --checkpoint runs/pretrain --out runs/hard --negatives hard --refresh-every 50
  cirlab finetune --data data/fashioniq --model RN50x4 --pretrained openai --out runs/clip4cir --precision bf16
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cirlab.cli.options import add_component, add_out
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
    add_contrast_arguments(parser)


def add_contrast_arguments(parser: argparse.ArgumentParser) -> None:
    """What each query is contrasted with: mined negatives, the gallery refresh and the gather over processes;
    defaults from :class:`~cirlab.encoder_training.options.ContrastOptions`."""
    from cirlab.encoder_training.options import ContrastOptions

    d = ContrastOptions()
    group = parser.add_argument_group("negatives")
    add_component(group, "negatives", "negative sampler mined over the training gallery, or in-batch for the "
                                      "batch's other targets only", d.negatives)
    group.add_argument("--num-negatives", type=int, default=d.num_negatives, metavar="K",
                       help=f"negatives mined per query (default: {d.num_negatives})")
    group.add_argument("--negatives-option", dest="negatives_options", action="append", type=sampler_option,
                       default=[], metavar="KEY=VALUE",
                       help="an option of the sampler, the value read as YAML (repeatable), e.g. top_m=50")
    group.add_argument("--refresh-every", type=int, default=d.refresh_every, metavar="N",
                       help=f"re-encode the gallery's images every N steps; 0: once, before the first step "
                            f"(default: {d.refresh_every})")
    group.add_argument("--no-gather-batch", dest="gather_batch", action="store_false",
                       help="under torchrun, score each query against its own process's targets only (cheaper; "
                            "not equal to one process with the whole batch)")


def sampler_option(text: str) -> tuple[str, Any]:
    """``key=value`` → ``(key, value read as YAML)``."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def contrast_options(args: argparse.Namespace) -> Any:
    """The :class:`~cirlab.encoder_training.options.ContrastOptions` given by the parsed options."""
    from cirlab.encoder_training.options import ContrastOptions

    return ContrastOptions(negatives=args.negatives or ContrastOptions.negatives,
                           negatives_options=dict(args.negatives_options), num_negatives=args.num_negatives,
                           refresh_every=args.refresh_every, gather_batch=args.gather_batch)


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab finetune``: progress on stderr, the result on stdout."""
    from cirlab.distributed import is_main_process
    from cirlab.encoder_training.finetuning import finetune

    result = finetune(args.data, args.out, checkpoint=args.checkpoint, model=args.model,
                      pretrained=pretrained_tag(args.pretrained), towers=args.towers, categories=args.categories,
                      contrast=contrast_options(args), **training_overrides(args))
    if is_main_process():
        print(result.summary())
    return 0
