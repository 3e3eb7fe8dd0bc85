"""Train every negative-sampling strategy with several seeds on the same budget and write a report with intervals.

  cirlab compare --config synthetic --features CACHE --strategies random,category,semi-hard,hard --out OUT
  cirlab compare --features CACHE --strategies random,hard --seeds 5 --include-contrastive --out OUT

Every run starts from the same config (YAML file or shipped name, then --set overrides) and differs only
in its sampler and seed: same feature cache, combiner, loss, epochs and batch size, evaluated after every
epoch. --include-contrastive adds CLIP4Cir's recipe (contrastive loss over the batch, no mined negatives)
and --include-seed the seed system's recipe as reference runs. Runs go to OUT/runs/<strategy>/seed-<s>/;
a rerun reuses finished runs and resumes an interrupted one. --jobs N trains N runs at once, each in its
own process with an equal share of the CPU cores (auto: one per core, up to 4, on a CPU).

Each run's checkpoint is selected on validation (--selection val) or taken at its last epoch (last); with
test targets in the data set the selected checkpoint is reported on test (the default, auto, then selects
on val; without them it reports the last epoch). OUT/report.md holds, per strategy, mean ± sd over seeds
of Recall@K and the headline, the difference to --baseline with a 95% interval from a paired bootstrap over
seeds and queries, a verdict only where the interval excludes zero, the epochs to one fixed Recall@10
threshold, mining cost per step, chance level, the negative ledger, curves and query figures;
OUT/comparison.json holds every number, and every per-query rank stays in the run folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cirlab.cli.options import add_config, add_features, add_jobs, add_out, add_set, add_strategies


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab compare``."""
    add_config(parser, default="synthetic")
    add_strategies(parser)
    add_out(parser, "comparison folder (runs, report, figures)", required=True)
    add_features(parser, default_text="the config's")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="epochs of every run (default: the config's)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="runs per strategy, with seeds seed, seed+1, ... (default: the config's seeds, 3)")
    parser.add_argument("--include-contrastive", action="store_true",
                        help="also train the in-batch contrastive reference runs (CLIP4Cir's recipe)")
    parser.add_argument("--include-seed", action="store_true",
                        help="also train the seed system's recipe as reference runs (same features and seeds)")
    parser.add_argument("--baseline", default="random", metavar="NAME",
                        help="the strategy every other one is compared with (default: %(default)s)")
    parser.add_argument("--selection", default="auto", choices=("auto", "val", "last"),
                        help="which checkpoint of each run is reported: the best validation epoch, the last "
                             "epoch, or auto (val when the data set has test targets, else last; default)")
    parser.add_argument("--threshold", type=float, default=None, metavar="R10",
                        help="learning speed: the first epoch reaching this mean Recall@10 in percent "
                             "(default: the baseline's mean final Recall@10)")
    parser.add_argument("--draws", type=int, default=2000, metavar="N",
                        help="bootstrap draws of every interval (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="data set folder for the query figures (default: the one the feature cache records)")
    parser.add_argument("--queries", type=int, default=4, metavar="N",
                        help="validation queries per query figure, 0 for none (default: %(default)s)")
    parser.add_argument("--query-seed", type=int, default=0, metavar="N",
                        help="seed choosing those queries (default: %(default)s)")
    add_jobs(parser, 1)
    add_set(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab compare``: the table and one sentence per strategy on stdout, progress on stderr."""
    from cirlab.compare import compare

    result = compare(args.config, args.strategies, args.out, seeds=args.seeds, epochs=args.epochs,
                     features=args.features, include_contrastive=args.include_contrastive,
                     include_seed=args.include_seed, overrides=args.set_options, baseline=args.baseline,
                     threshold=args.threshold, selection=args.selection, draws=args.draws, data_root=args.data,
                     queries=args.queries, query_seed=args.query_seed, jobs=args.jobs)
    print(result.format_table())
    print(f"\nreport: {result.report}")
    return 0
