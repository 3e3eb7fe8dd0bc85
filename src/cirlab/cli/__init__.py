"""The ``cirlab`` command line: a thin layer that parses options and calls the library.

Each subcommand lives in its own module ``cirlab.cli.<name>`` exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules import heavy libraries inside ``run`` so that ``--help`` stays fast, and
declare the options several commands share through :mod:`cirlab.cli.options`.

Every command writes the same way: results on stdout; progress, status and warnings on stderr, through
cirlab's loggers (set up here: message only, INFO from the main process, warnings from the others and
with ``--quiet``). Expected errors (:class:`~cirlab.errors.CirlabError`) and mistyped options are one
``cirlab: error:`` line, written in one piece so that the lines of several processes never interleave,
and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn, TextIO

from cirlab import __version__
from cirlab.cli.options import LATER_HELP, add_quiet
from cirlab.errors import CirlabError
from cirlab.progress import NO_PROGRESS_ENV
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


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are written in one piece and suggest the closest option,
    and whose help texts may be written when shown (:func:`cirlab.cli.options.help_later`)."""

    def format_help(self) -> str:
        for action in self._actions:
            describe = getattr(action, LATER_HELP, None)
            if describe is not None:
                action.help = describe()
                setattr(action, LATER_HELP, None)
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        write_stderr(f"{self.format_usage()}{self.prog}: error: {message}\n")
        self.exit(2)

    def unrecognized(self, extras: Sequence[str]) -> NoReturn:
        """Refuse ``extras`` (arguments no option took), naming the closest option of this command."""
        known = [flag for action in self._actions for flag in action.option_strings]
        hint = ""
        for extra in extras:
            if extra.startswith("-"):
                close = difflib.get_close_matches(extra.partition("=")[0], known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                break
        self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per available subcommand."""
    parser = CommandParser(
        prog="cirlab", description="Composed image retrieval with pluggable, measurable negative sampling.")
    parser.add_argument("--version", action="version", version=f"cirlab {__version__}")
    add_quiet(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in available_commands():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        add_quiet(sub, default=argparse.SUPPRESS)  # given after the command, it still reaches args.quiet
        sub.set_defaults(_run=module.run, _parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cirlab`` console command."""
    passive_omp_wait()  # before any command imports torch
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        getattr(args, "_parser", parser).unrecognized(extras)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        with command_output(quiet=args.quiet):
            return int(args._run(args) or 0)
    except CirlabError as exc:
        write_stderr(f"cirlab: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        write_stderr("cirlab: interrupted\n")
        return 130


def write_stderr(text: str) -> None:
    """Write ``text`` (whole lines) to stderr in one write call, flushed, so that the lines of several
    processes sharing the stream never interleave."""
    sys.stderr.flush()
    sys.stderr.write(text)
    sys.stderr.flush()


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a record arrives (tests replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: logging assigns the stream once, but the property always answers ``sys.stderr``."""


class _MainProcessInfo(logging.Filter):
    """Passes warnings and errors from every process, lower levels from the main process only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        from cirlab.distributed import is_main_process  # imported at the first record: it loads torch

        return is_main_process()


class _MessageFormatter(logging.Formatter):
    """The message alone; warnings and errors prefixed with their level (``warning: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


@contextlib.contextmanager
def command_output(quiet: bool = False) -> Iterator[None]:
    """While a command runs, cirlab's loggers write to stderr, one line each: INFO and above from the main
    process, warnings and errors from the others and with ``quiet``, which also turns progress off (in
    worker processes too). The level and the environment are restored afterwards."""
    logger = logging.getLogger("cirlab")
    level, propagate, no_progress = logger.level, logger.propagate, os.environ.get(NO_PROGRESS_ENV)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    # Not also through the root logger: a library that logs through the root (open_clip does) gives it a
    # handler of its own on first use, which would print every line a second time.
    logger.propagate = False
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_MessageFormatter("%(message)s"))
        handler.addFilter(_MainProcessInfo())
        logger.addHandler(handler)
    if quiet:
        os.environ[NO_PROGRESS_ENV] = "1"
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        if no_progress is None:
            os.environ.pop(NO_PROGRESS_ENV, None)
        else:
            os.environ[NO_PROGRESS_ENV] = no_progress
