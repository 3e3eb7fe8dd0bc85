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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab eval``."""
    parser.add_argument("--features", type=Path, required=True, metavar="DIR",
                        help="feature cache folder (from `cirlab extract`)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=Path, default=None, metavar="PATH",
                       help="combiner checkpoint folder, or a training run folder (its best/ checkpoint is used)")
    which.add_argument("--combiner", default="sum", metavar="NAME",
                       help="parameter-free combiner to evaluate when no checkpoint is given (default: sum)")
    parser.add_argument("--categories", type=_category_list, default=None, metavar="LIST",
                        help="comma-separated categories (default: every category in the cache)")
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE", help="write the result as JSON to this file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=1024, metavar="N",
                        help="queries ranked at once (default: 1024)")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab eval``: print the table, write the JSON when asked."""
    from cirlab.evaluation.pipeline import evaluate

    result = evaluate(args.features, checkpoint=args.checkpoint, combiner=args.combiner, categories=args.categories,
                      split=args.split, out=args.out, device=args.device, batch_size=args.batch_size)
    print(result.format_table())
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _category_list(text: str) -> list[str]:
    categories = [c.strip() for c in text.split(",") if c.strip()]
    if not categories:
        raise argparse.ArgumentTypeError("expected comma-separated category names, e.g. dress,shirt,toptee")
    return categories
