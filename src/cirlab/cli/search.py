"""Run one composed query against a gallery index and print the ranked results.

`cirlab search --index INDEX --checkpoint RUN --reference ID_OR_FILE --text "is red"` takes the
reference's cached features (a gallery or cache image id) or encodes an image file with the cache's
encoder and preprocessing, encodes the text, combines both with the run's best combiner (`RUN/best`,
or a combiner folder; `--combiner sum` needs no training) and prints rank, id, score and category.
"""

from __future__ import annotations

import argparse
import json

from cirlab.cli.options import add_device, add_engine_arguments, add_features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab search``."""
    add_engine_arguments(parser)
    add_features(parser, default_text="the one the index was built from")
    parser.add_argument("--reference", required=True, help="reference image: an id of the feature cache, or a file")
    parser.add_argument("--text", required=True, help='the modification, e.g. "is red and has long sleeves"')
    parser.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    parser.add_argument("--category", default=None, help="search only this category")
    parser.add_argument("--include-reference", action="store_true", help="keep the reference image in the results")
    add_device(parser)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab search``."""
    from cirlab.search.query import search_index

    hits = search_index(args.index, args.reference, args.text, checkpoint=args.checkpoint,
                        combiner_name=args.combiner, features=args.features, k=args.k, category=args.category,
                        exclude_reference=not args.include_reference, device=args.device)
    if args.json:
        print(json.dumps([{"rank": rank, **hit.to_dict()} for rank, hit in enumerate(hits, start=1)], indent=2))
        return 0
    width = max([len(hit.id) for hit in hits] + [2])
    print(f"{'rank':>4}  {'id':<{width}}  {'score':>7}  category")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>4}  {hit.id:<{width}}  {hit.score:7.4f}  {hit.category}")
    return 0
