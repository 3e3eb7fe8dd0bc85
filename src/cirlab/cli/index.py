"""Build a faiss index over the gallery images of a feature cache.

`cirlab index --features CACHE --out INDEX_DIR` indexes the L2-normalised image features of the
`val` images of every cached category (exact inner product, faiss IndexFlatIP). `--kind ivf` builds
an inverted-file index (IndexIVFFlat) for large galleries and prints its recall@10 against the exact
index. The index folder records the cache it came from (model, weights hash, data fingerprint,
dimension), the encoder, and the gallery ids with their categories; it is written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab index``."""
    parser.add_argument("--features", type=Path, required=True, help="feature cache folder (from `cirlab extract`)")
    parser.add_argument("--out", type=Path, required=True, help="index folder to write")
    parser.add_argument("--category", default=None,
                        help="comma-separated categories to index (default: every cached category with the split)")
    parser.add_argument("--split", default="val", help="split whose images form the gallery (default: val)")
    parser.add_argument("--kind", choices=("flat", "ivf"), default="flat",
                        help="flat: exact search (default); ivf: approximate, for large galleries")
    parser.add_argument("--nlist", type=int, default=None, help="ivf: number of inverted lists (default ~4·√N)")
    parser.add_argument("--nprobe", type=int, default=None,
                        help="ivf: lists visited per query (default max(8, nlist/16))")
    parser.add_argument("--recall-queries", type=int, default=1000,
                        help="ivf: gallery images used as queries to measure recall@10 (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ivf training and the recall sample")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab index``."""
    from cirlab.search.build import build_index

    categories = [c.strip() for c in args.category.split(",") if c.strip()] if args.category else None
    report = build_index(args.features, args.out, categories=categories, split=args.split, kind=args.kind,
                         nlist=args.nlist, nprobe=args.nprobe, recall_queries=args.recall_queries, seed=args.seed)
    print(report.format())
    return 0
