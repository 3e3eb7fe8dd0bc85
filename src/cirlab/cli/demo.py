"""Run the whole pipeline on the synthetic benchmark: no GPU, no downloads, about five minutes on 2 CPU cores.

Stages (each cached in a sub-folder of --out; a finished stage is skipped on the next run, and a
stage whose options changed is redone together with the ones after it):

  1. generate the synthetic FashionIQ-format benchmark            OUT/data/
  2. pretrain a small open_clip encoder CLIP-style on its tags     OUT/encoder/
  3. extract image and caption features                           OUT/features/
  4. train one combiner per negative-sampling strategy and report OUT/compare/report.md

Examples:
  cirlab demo                                   (writes demo-output/)
  cirlab demo --out /tmp/demo --strategies random,hard --epochs 6
  cirlab demo --tiny --out /tmp/demo-tiny       (a toy size, well under a minute)
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab demo``."""
    from cirlab.demo.options import DemoOptions

    d = DemoOptions()
    parser.add_argument("--out", type=Path, default=d.out, help="output folder (default: %(default)s)")
    parser.add_argument("--tiny", action="store_true",
                        help="a toy size (tiny benchmark, few steps, random and hard only) that runs in well under "
                             "a minute; the other options still apply on top")
    parser.add_argument("--size", "--images-per-category", dest="images_per_category", type=int, default=None,
                        metavar="N", help="data set size: images per category (default: the preset's, 1200; 40 with "
                                          "--tiny)")
    parser.add_argument("--strategies", default=None,
                        help=f"comma-separated negative samplers to compare (default: {','.join(d.strategies)})")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"combiner training epochs per strategy (default: {d.epochs})")
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help=f"encoder pretraining epochs (default: {d.pretrain_epochs})")
    parser.add_argument("--model", default=None, help=f"small open_clip architecture to pretrain (default: {d.model})")
    parser.add_argument("--seed", type=int, default=None, help="seed of every stage (default: 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"image-decoding worker processes (default: {d.workers})")
    parser.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda ... (default: auto)")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab demo``."""
    from cirlab.demo import DemoOptions, run_demo

    base = DemoOptions.tiny() if args.tiny else DemoOptions()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies else None
    options = base.with_overrides(out=args.out, images_per_category=args.images_per_category, strategies=strategies,
                                  epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, model=args.model,
                                  seed=args.seed, workers=args.workers, device=args.device)
    result = run_demo(options)
    print()
    print(result.comparison.format_table())
    print()
    for sentence in result.comparison.verdicts.values():
        print("- " + sentence.replace("**", ""))
    print(f"\ndemo finished in {result.seconds:.0f} s (stages run: {', '.join(result.ran) or 'none'}; "
          f"skipped: {', '.join(result.skipped) or 'none'}); report: {result.report}")
    return 0
