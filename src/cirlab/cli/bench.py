"""Measure how fast cirlab trains, mines, evaluates and searches, against limits and alternatives.

Each figure is either a ratio against a baseline timed in the same rounds of the same run (a matrix
product, the random sampler, a bare top-k, pytorch-metric-learning's miner, a naive per-image loop),
which stays stable on a loaded machine, or an absolute time or rate of this machine only.

  cirlab bench                          all benchmarks (a few minutes on two cores)
  cirlab bench --quick                  smaller sizes, fewer repeats (well under a minute)
  cirlab bench --only mining,eval --out mining.json

Benchmarks: train, mining, pml, naive, cache, eval, search. The table goes to stdout, the JSON
(every figure with its unit, kind, spread and baseline, plus the machine's description) to --out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

DEFAULT_OUT = Path("bench-results.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab bench``."""
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--only", default=None, metavar="NAME,...",
                        help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results file (default {DEFAULT_OUT})")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads during the run (default: torch's default, one per core)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random input (default 0)")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab bench``."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # encoders are random-initialised; never reach the network
    from cirlab.bench import run_benchmarks

    names = args.only.split(",") if args.only is not None else None
    report = run_benchmarks(names, quick=args.quick, device=args.device, threads=args.threads, seed=args.seed)
    report.command = "cirlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] \
        else "cirlab bench"
    print(report.format_table())
    report.write_json(args.out)
    print(f"\nwrote {args.out}")
    return 0
