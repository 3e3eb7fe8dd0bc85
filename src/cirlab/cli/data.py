"""Inspect and validate a data set (FashionIQ or CIRR layout).

`cirlab data check ROOT` reads every caption, split and tag file and decodes every referenced image,
then prints a summary: images, triplets per category and split, missing images and the triplets
they affect, duplicate ids, corrupt files. Exit status 0 when the data set is clean, 1 otherwise.
The layout is recognised from the folder's files, or named with --dataset.

`cirlab data check-submission FILE --data ROOT` checks a CIRR test-server file (from `cirlab eval --submission`
or from any other tool) against the split's annotation before it is uploaded: every pair present and no other,
the version and metric, list lengths, known image names, no duplicate, no reference, the server's 5 MB limit.
It prints the file's metric and pair count, or the first problem in one line (exit status 1).
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
    submission = actions.add_parser("check-submission", help="check a CIRR test-server file against the annotation")
    submission.set_defaults(_parser=submission)
    submission.add_argument("file", type=Path, help="a recall or recall_subset submission (JSON)")
    submission.add_argument("--data", type=Path, required=True, metavar="ROOT", help="the CIRR data set folder")
    submission.add_argument("--split", default="test1", help="the split the file predicts (default: test1)")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab data ACTION``."""
    if args.action == "check-submission":
        return _check_submission(args)
    from cirlab.data.check import check_dataset
    from cirlab.io import atomic_write_json

    report = check_dataset(args.root, kind=args.dataset, verify_images=not args.no_images)
    print(report.format())
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0 if report.ok else 1



def _check_submission(args: argparse.Namespace) -> int:
    import sys

    from cirlab.data.dataset import open_dataset
    from cirlab.evaluation.submission import SubmissionError, check_submission, dataset_pair_specs

    pairs, images = dataset_pair_specs(open_dataset(args.data, "cirr"), args.split)
    try:
        metric = check_submission(args.file, pairs, images)
    except SubmissionError as error:
        print(f"{args.file}: rejected: {str(error).removeprefix(f'{args.file}: ')}", file=sys.stderr)
        return 1
    print(f"{args.file}: a valid {metric} submission for all {len(pairs)} {args.split} pairs")
    return 0
