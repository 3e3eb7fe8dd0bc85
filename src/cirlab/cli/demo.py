"""Run the whole pipeline on the synthetic benchmark: no GPU, no downloads, about four minutes on 2 CPU cores.

Stages (each cached in a sub-folder of --out; a finished stage is skipped on the next run, and a
stage whose options changed is redone together with the ones after it):

  1. generate the synthetic FashionIQ-format benchmark            OUT/data/
  2. pretrain a small open_clip encoder CLIP-style on its tags     OUT/encoder/
  3. extract image and caption features                           OUT/features/
  4. train one combiner per negative-sampling strategy and report OUT/compare/report.md

With --dataset cirr the benchmark is written in CIRR's layout and scored with CIRR's protocol (R@K with
the reference removed, Rs@K within each query's img_set, headline the mean of R@5 and Rs@1); this demo is
shorter (500 images per category; random, semi-hard and hard; two seeds) and ends with a fifth stage:

  5. write the test server's files for test1 from the best run    OUT/submission/

Examples:
  cirlab demo                                   (writes demo-output/)
  cirlab demo --out /tmp/demo --strategies random,hard --epochs 6
  cirlab demo --tiny --out /tmp/demo-tiny       (a toy size, well under a minute)
  cirlab demo --dataset cirr --out /tmp/demo-cirr
"""

from __future__ import annotations

import argparse

from cirlab.cli.options import add_device, add_jobs, add_out, add_seed, add_strategies, add_workers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab demo``; the defaults are :class:`~cirlab.demo.options.DemoOptions`'."""
    from cirlab.demo.options import CIRR_DEMO, DATASETS, DemoOptions

    d = DemoOptions()
    add_out(parser, "output folder", default=d.out)
    parser.add_argument("--dataset", choices=DATASETS, default=d.dataset,
                        help="the synthetic benchmark's layout, and so the protocol that scores it (default: "
                             "%(default)s); cirr compares " + ",".join(CIRR_DEMO["strategies"]) + " by default and "
                             "also writes the test server's files of the best run")
    parser.add_argument("--tiny", action="store_true",
                        help="a toy size (tiny benchmark, few steps, random and hard only) that runs in well under "
                             "a minute; the other options still apply on top")
    parser.add_argument("--size", "--images-per-category", dest="images_per_category", type=int, default=None,
                        metavar="N", help="data set size: images per category (default: the preset's, 1200; "
                                          f"{CIRR_DEMO['images_per_category']} with --dataset cirr; 40 with --tiny)")
    add_strategies(parser, default=None, default_text=",".join(d.strategies))
    parser.add_argument("--ambiguity", default=None, metavar="LEVEL",
                        help="the benchmark's ambiguity level: default, medium or high (how many queries other "
                             f"gallery images satisfy; see `cirlab synth --help`) (default: {d.ambiguity})")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help=f"combiner training epochs per strategy (default: {d.epochs})")
    parser.add_argument("--pretrain-epochs", type=int, default=None, metavar="N",
                        help=f"encoder pretraining epochs (default: {d.pretrain_epochs})")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help=f"small open_clip architecture to pretrain (default: {d.model})")
    add_seed(parser, None, "every stage", default_text=str(d.seed))
    add_workers(parser, None, default_text=str(d.workers))
    add_jobs(parser, None, default_text=str(d.jobs))
    add_device(parser, default=None, default_text=d.device)


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab demo``: stages on stderr, the comparison and where its report is on stdout."""
    from cirlab.demo import DemoOptions, run_demo

    base = DemoOptions.for_dataset(args.dataset, tiny=args.tiny)
    options = base.with_overrides(out=args.out, images_per_category=args.images_per_category,
                                  strategies=args.strategies, epochs=args.epochs,
                                  pretrain_epochs=args.pretrain_epochs, model=args.model, seed=args.seed,
                                  workers=args.workers, device=args.device, ambiguity=args.ambiguity,
                                  jobs=args.jobs)
    result = run_demo(options)
    print(result.comparison.format_table())
    submission = f"; test-server files: {result.submission}" if result.submission is not None else ""
    print(f"\ndemo finished in {result.seconds:.0f} s (stages run: {', '.join(result.ran) or 'none'}; "
          f"skipped: {', '.join(result.skipped) or 'none'}); report: {result.report}{submission}")
    return 0
