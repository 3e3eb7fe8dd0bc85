"""Recall@K on the protocol of the cache's data set (FashionIQ or CIRR), or CIRR's test-server files.

FashionIQ, per category: gallery = every image of the split (or, with --gallery triplets, only the images of
its triplets), queries = every triplet of the split (text form "C1 and c2", empty captions included), ranked by
cosine similarity; the reference image stays in the gallery, as in CLIP4Cir. Prints Recall@1/5/10/50 per
category, their mean over categories and the mean of Recall@10 and Recall@50.
CIRR: gallery = every image of the split, the reference removed from its query's ranking; Recall@1/5/10/50,
Recall_subset@1/2/3 within the query's img_set, and the mean of Recall@5 and Recall_subset@1. Its test1 split
has no targets: --submission DIR writes the evaluation server's two files, checked against the annotation.
Every query that was left out or falls outside the gallery is counted below the table.

Examples:
  cirlab eval --features cache/ --checkpoint runs/hard-negatives --out results.json
  cirlab eval --features cache/ --combiner sum --categories dress,shirt
  cirlab eval --features cirr-cache/ --checkpoint runs/cirr --split test1 --submission submission/
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
    describe(parser.add_argument("--protocol", default=None, metavar="NAME"),
             lambda: f"evaluation protocol: {_protocols()}", "the cache's data set's protocol for the split")
    describe(parser.add_argument("--gallery", default=None, choices=("split", "triplets")),
             "FashionIQ's gallery: every image of the split (as CLIP4Cir) or only those of its triplets (as DQU-CIR)",
             "split")
    parser.add_argument("--submission", type=Path, default=None, metavar="DIR",
                        help="for a split without targets (CIRR test1): write the evaluation server's files here")
    add_out(parser, "write the result as JSON to this file", metavar="FILE")
    add_device(parser)
    describe(parser.add_argument("--batch-size", type=int, default=None, metavar="N"), "queries ranked at once",
             signature_default(EVALUATE, "batch_size"))


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab eval``: print the table, write the JSON when asked."""
    from cirlab.evaluation.pipeline import evaluate

    result = evaluate(args.features, checkpoint=args.checkpoint, categories=args.categories, out=args.out,
                      device=args.device, submission=args.submission,
                      **given(args, "combiner", "split", "batch_size", "protocol", "gallery"))
    print(result.format_table())
    if args.submission is not None:
        from cirlab.evaluation.submission import METRICS

        for file_name, _ in METRICS.values():
            print(f"wrote {args.submission / file_name} (checked)")
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _protocols() -> str:
    from cirlab.evaluation import PROTOCOLS

    return PROTOCOLS.summary()
