"""Recall@K on the FashionIQ validation protocol, from a feature cache.

Per category: gallery = every image of the split, queries = every triplet of the split (text form
"C1 and c2", empty captions included), ranked by cosine similarity; the reference image stays in the
gallery, as in CLIP4Cir. Prints Recall@1/5/10/50 per category, their mean over categories and the mean of
Recall@10 and Recall@50, with every query that was left out or falls outside the gallery counted below.

Examples:
  cirlab eval --features cache/ --checkpoint runs/hard-negatives --out results.json
  cirlab eval --features cache/ --combiner sum --categories dress,shirt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cirlab.cli.options import add_categories, add_device, add_features, add_out, describe, given, signature_default

#: Where the defaults of the options left out come from.
EVALUATE = "cirlab.evaluation.pipeline:evaluate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab eval``."""
    add_features(parser, required=True)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                       help="combiner checkpoint folder, or a training run folder (its best/ checkpoint is used)")
    describe(which.add_argument("--combiner", default=None, metavar="NAME"),
             "parameter-free combiner to evaluate when no checkpoint is given", signature_default(EVALUATE, "combiner"))
    add_categories(parser, default_text="every category in the cache")
    describe(parser.add_argument("--split", default=None, metavar="SPLIT"), "split to evaluate",
             signature_default(EVALUATE, "split"))
    add_out(parser, "write the result as JSON to this file", metavar="FILE")
    add_device(parser)
    describe(parser.add_argument("--batch-size", type=int, default=None, metavar="N"), "queries ranked at once",
             signature_default(EVALUATE, "batch_size"))


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab eval``: print the table, write the JSON when asked."""
    from cirlab.evaluation.pipeline import evaluate

    result = evaluate(args.features, checkpoint=args.checkpoint, categories=args.categories, out=args.out,
                      device=args.device, **given(args, "combiner", "split", "batch_size"))
    print(result.format_table())
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0
