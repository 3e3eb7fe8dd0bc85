"""Build a faiss index over the gallery images of a feature cache.

`cirlab index --features CACHE --out INDEX_DIR` indexes the L2-normalised image features of the
`val` images of every cached category (exact inner product, faiss IndexFlatIP). `--kind ivf` builds
an inverted-file index (IndexIVFFlat) for large galleries and prints its recall@10 against the exact
index. The index folder records the cache it came from (model, weights hash, data fingerprint,
dimension), the encoder, and the gallery ids with their categories; it is written atomically.
"""

from __future__ import annotations

import argparse

from cirlab.cli.options import (
    add_categories,
    add_features,
    add_out,
    add_seed,
    describe,
    given,
    signature_default,
)

#: Where the defaults of the options left out come from.
BUILD = "cirlab.search.build:build_index"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab index``."""
    add_features(parser, required=True)
    add_out(parser, "index folder to write", required=True)
    add_categories(parser, "--category", default_text="every cached category with the split")
    describe(parser.add_argument("--split", default=None, metavar="SPLIT"), "split whose images form the gallery",
             signature_default(BUILD, "split"))

    def kinds() -> str:
        from cirlab.search.index import INDEX_KINDS

        return f"{' or '.join(INDEX_KINDS)}: flat searches exactly; ivf approximately, for large galleries"

    describe(parser.add_argument("--kind", default=None, metavar="KIND"), kinds, signature_default(BUILD, "kind"))
    parser.add_argument("--nlist", type=int, default=None, metavar="N",
                        help="ivf: number of inverted lists (default: about 4·√N)")
    parser.add_argument("--nprobe", type=int, default=None, metavar="N",
                        help="ivf: lists visited per query (default: max(8, nlist/16))")
    describe(parser.add_argument("--recall-queries", type=int, default=None, metavar="N"),
             "ivf: gallery images used as queries to measure recall@10", signature_default(BUILD, "recall_queries"))
    add_seed(parser, None, "the ivf training and the recall sample", default_text=signature_default(BUILD, "seed"))


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab index``."""
    from cirlab.search.build import build_index

    report = build_index(args.features, args.out, categories=args.categories, nlist=args.nlist, nprobe=args.nprobe,
                         **given(args, "split", "kind", "recall_queries", "seed"))
    print(report.format())
    return 0
