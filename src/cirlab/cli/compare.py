"""Train one combiner run per negative-sampling strategy on the same budget and write a report.

  cirlab compare --config synthetic --features CACHE --strategies random,category,semi-hard,hard --out OUT
  cirlab compare --features CACHE --strategies random,hard --epochs 5 --include-contrastive --out OUT

Every run starts from the same config (YAML file or shipped name, then --set overrides) and differs only
in its sampler: same feature cache, seed, combiner, loss, epochs and batch size, evaluated after every
epoch. --include-contrastive adds CLIP4Cir's recipe (contrastive loss over the batch, no mined negatives)
as a reference run. Runs go to OUT/runs/<strategy>/; a rerun reuses finished runs and resumes an
interrupted one. OUT/report.md holds the tables (final and best Recall@K, the epoch at which each run
first reaches a Recall@10 threshold, mining time per step, total time, the untrained `sum` baseline),
one sentence per strategy against `random`, the curves and query figures; OUT/comparison.json holds
every number.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cirlab.cli.options import add_config, add_features, add_out, add_set, add_strategies


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab compare``."""
    add_config(parser, default="synthetic")
    add_strategies(parser)
    add_out(parser, "comparison folder (runs, report, figures)", required=True)
    add_features(parser, default_text="the config's")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="epochs of every run (default: the config's)")
    parser.add_argument("--include-contrastive", action="store_true",
                        help="also train the in-batch contrastive reference run (CLIP4Cir's recipe)")
    parser.add_argument("--threshold", type=float, default=None, metavar="R10",
                        help="report the first epoch reaching this mean Recall@10 in percent "
                             "(default: 90%% of the way from the untrained sum combiner's Recall@10 to the "
                             "best final one)")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="data set folder for the query figures (default: the one the feature cache records)")
    parser.add_argument("--queries", type=int, default=4, metavar="N",
                        help="validation queries per query figure, 0 for none (default: %(default)s)")
    parser.add_argument("--query-seed", type=int, default=0, metavar="N",
                        help="seed choosing those queries (default: %(default)s)")
    add_set(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab compare``: the table and one sentence per strategy on stdout, progress on stderr."""
    from cirlab.compare import compare

    result = compare(args.config, args.strategies, args.out, epochs=args.epochs, features=args.features,
                     include_contrastive=args.include_contrastive, overrides=args.set_options,
                     threshold=args.threshold, data_root=args.data, queries=args.queries,
                     query_seed=args.query_seed)
    print(result.format_table())
    for sentence in result.verdicts.values():
        print("- " + sentence.replace("**", ""))
    print(f"\nreport: {result.report}")
    return 0
