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

DEFAULT_STRATEGIES = "random,category,semi-hard,hard"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab compare``."""
    parser.add_argument("--config", default="synthetic",
                        help="YAML training config or shipped config name (default: %(default)s)")
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES,
                        help="comma-separated negative samplers, one run each (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="comparison folder (runs, report, figures)")
    parser.add_argument("--features", type=Path, default=None, help="feature cache (default: the config's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the config's)")
    parser.add_argument("--include-contrastive", action="store_true",
                        help="also train the in-batch contrastive reference run (CLIP4Cir's recipe)")
    parser.add_argument("--threshold", type=float, default=None, metavar="R10",
                        help="report the first epoch reaching this mean Recall@10 in percent "
                             "(default: 90%% of the way from the untrained sum combiner's Recall@10 to the "
                             "best final one)")
    parser.add_argument("--data", type=Path, default=None,
                        help="data set folder for the query figures (default: the one the feature cache records)")
    parser.add_argument("--queries", type=int, default=4, help="validation queries per query figure, 0 for none "
                                                               "(default: %(default)s)")
    parser.add_argument("--query-seed", type=int, default=0, help="seed choosing those queries (default: 0)")
    parser.add_argument("--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key for every run (repeatable), e.g. --set batch_size=128")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab compare``."""
    from cirlab.compare import compare

    result = compare(args.config, args.strategies.split(","), args.out, epochs=args.epochs, features=args.features,
                     include_contrastive=args.include_contrastive, overrides=args.set_options,
                     threshold=args.threshold, data_root=args.data, queries=args.queries,
                     query_seed=args.query_seed)
    print(result.format_table())
    for sentence in result.verdicts.values():
        print("- " + sentence.replace("**", ""))
    return 0
