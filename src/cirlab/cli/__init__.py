"""The ``cirlab`` command line: a thin layer that parses options and calls the library.

Each subcommand lives in its own module ``cirlab.cli.<name>`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules import heavy libraries inside ``run`` so that ``--help`` stays fast.
Expected errors (:class:`~cirlab.errors.CirlabError`) are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from cirlab import __version__
from cirlab.errors import CirlabError
from cirlab.threads import passive_omp_wait

#: (subcommand, module, one-line help), in the order a user meets them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "cirlab.cli.demo", "run the whole pipeline on the synthetic benchmark (no GPU, no downloads)"),
    ("synth", "cirlab.cli.synth", "write the synthetic FashionIQ-format benchmark"),
    ("data", "cirlab.cli.data", "inspect and validate a FashionIQ-layout data set"),
    ("pretrain", "cirlab.cli.pretrain", "CLIP-style contrastive pretraining on a data set's tags"),
    ("finetune", "cirlab.cli.finetune", "adapt the encoders on CIR triplets (CLIP4Cir stage one)"),
    ("extract", "cirlab.cli.extract", "encode every image and caption variant into a feature cache"),
    ("train", "cirlab.cli.train", "train a combiner on cached features with a negative-sampling strategy"),
    ("eval", "cirlab.cli.eval", "Recall@K on the FashionIQ validation protocol"),
    ("compare", "cirlab.cli.compare", "train one run per negative-sampling strategy and write a report"),
    ("index", "cirlab.cli.index", "build a faiss index over gallery features"),
    ("search", "cirlab.cli.search", "run one composed query against an index"),
    ("serve", "cirlab.cli.serve", "serve the search API and web page"),
    ("bench", "cirlab.cli.bench", "measure training, mining, evaluation and search speed"),
)


def available_commands() -> list[tuple[str, str, str]]:
    """Subcommands whose module is installed."""
    return [c for c in COMMANDS if importlib.util.find_spec(c[1]) is not None]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per available subcommand."""
    parser = argparse.ArgumentParser(
        prog="cirlab", description="Composed image retrieval with pluggable, measurable negative sampling.")
    parser.add_argument("--version", action="version", version=f"cirlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in available_commands():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cirlab`` console command."""
    passive_omp_wait()  # before any command imports torch
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except CirlabError as exc:
        print(f"cirlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cirlab: interrupted", file=sys.stderr)
        return 130
