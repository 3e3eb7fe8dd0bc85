"""Measure how fast cirlab trains, mines, evaluates and searches, against limits and alternatives.

Each figure is a ratio against a baseline timed in the same rounds of the same run (a matrix product,
the random sampler, a bare top-k, pytorch-metric-learning's miner, a naive per-image loop), an absolute
time or rate of this machine only, or an exact, machine-independent count (FLOPs, agreement with
pytorch-metric-learning's miner, IVF recall). docs/performance.md explains how to read them.

  cirlab bench                          all benchmarks (a few minutes on two cores)
  cirlab bench --quick                  smaller sizes, fewer repeats (well under a minute)
  cirlab bench --only mining,eval --out mining.json

Benchmarks: train, mining, pml, naive, extract, cache, eval, search. The table goes to stdout, the JSON
(every figure with its unit, kind, spread and baseline, plus the machine's description) to --out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from cirlab.cli.options import add_device, add_out, add_seed

DEFAULT_OUT = Path("bench-results.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab bench``."""
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    parser.add_argument("--only", default=None, metavar="NAME,...",
                        help="comma-separated benchmarks to run (default: all)")
    add_out(parser, "JSON results file", default=DEFAULT_OUT, metavar="FILE")
    add_device(parser)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads during the run (default: torch's default, one per core)")
    add_seed(parser, 0, "every random input")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab bench``."""
    from cirlab.bench import run_benchmarks
    from cirlab.errors import ConfigError

    _check_writable(args.out)  # before minutes of measuring, not after
    names = args.only.split(",") if args.only is not None else None
    report = run_benchmarks(names, quick=args.quick, device=args.device, threads=args.threads, seed=args.seed)
    report.command = _command_line()
    print(report.format_table())
    try:
        report.write_json(args.out)
    except OSError as exc:
        raise ConfigError(f"{args.out}: cannot write the results ({exc.strerror or exc})") from None
    print(f"\nwrote {args.out}")
    return 0


def _check_writable(path: Path) -> None:
    """Refuse an --out that is a folder or lies in a folder that exists but cannot be written."""
    import os

    from cirlab.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"{path}: --out names a folder; give a file name such as {path / DEFAULT_OUT.name}")
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{path}: cannot write the results there ({folder} is not writable)")


def _command_line() -> str:
    """The command as typed, for the JSON record (``cirlab bench`` when called from Python)."""
    arguments = sys.argv[1:]
    if arguments[:1] != ["bench"]:
        return "cirlab bench"
    return "cirlab " + " ".join(shlex.quote(a) for a in arguments)
