"""Inspect and validate a data set (FashionIQ or CIRR layout).

`cirlab data check ROOT` reads every caption, split and tag file and decodes every referenced image,
then prints a summary: images, triplets per category and split, missing images and the triplets
they affect, duplicate ids, corrupt files. Exit status 0 when the data set is clean, 1 otherwise.
The layout is recognised from the folder's files, or named with --dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cirlab.cli.options import add_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab data``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a data set and print a summary")
    check.set_defaults(_parser=check)  # mistyped options get this command's usage
    check.add_argument("root", type=Path, help="data set folder (FashionIQ: images/, captions/, image_splits/, "
                                               "tags/; CIRR: cirr/ and the image folders)")
    add_dataset(check)
    check.add_argument("--no-images", action="store_true", help="skip decoding every image (faster)")
    check.add_argument("--json", type=Path, default=None, help="also write the summary as JSON to this file")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab data ACTION``."""
    from cirlab.data.check import check_dataset
    from cirlab.io import atomic_write_json

    report = check_dataset(args.root, kind=args.dataset, verify_images=not args.no_images)
    print(report.format())
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0 if report.ok else 1

