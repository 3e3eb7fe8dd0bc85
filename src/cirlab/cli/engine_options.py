"""Options shared by the commands that load a search engine (``cirlab search``, ``cirlab serve``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--index`` and the combiner to query with: ``--checkpoint`` or a parameter-free ``--combiner``."""
    parser.add_argument("--index", type=Path, required=True, help="index folder (from `cirlab index`)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, help="training run folder (its best/ is used) or combiner folder")
    which.add_argument("--combiner", default=None, help="a parameter-free combiner instead of a checkpoint: sum")
