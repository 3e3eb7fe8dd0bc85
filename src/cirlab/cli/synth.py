"""Write the synthetic benchmark (FashionIQ's layout, or CIRR's with --format cirr).

`cirlab synth --out DIR` draws garments (dress, shirt, toptee) with compositional attributes
(colour and shade, pattern, sleeves, length, neckline), picks reference/target pairs that differ in
one to three attributes, writes two relative captions per pair, and lays everything out as
FashionIQ does (images/, image_splits/, captions/, tags/), plus synth_meta.json with the ground
truth. The same options give byte-identical files; rerunning over a finished output is a no-op, and
a non-empty folder that is not an output of the same options is refused.

Presets: `default` (1200 images per category, 96 px) for the demo; `tiny` (40 per category, 48 px)
for tests. --images-per-category and --size override the preset.

--format cirr writes the same benchmark in CIRR's layout (cirr/captions/, cirr/image_splits/, train/,
dev/, test1/): one caption per query (the two joined: "C1 and c2"), an img_set of six similar images,
target_soft from the ground truth, a pairid numbering over the whole data set and a test1 split without
targets; cirr/tags/ holds the attribute phrases for pretraining (a cirlab extension: real CIRR has no tags).

--ambiguity raises how often another gallery image satisfies a query as well as its target does
(attribute twins, vague captions, colourway families); `default` writes the benchmark exactly as
before. The summary prints the share of such queries per split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cirlab.cli.options import add_out, add_seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab synth``."""
    from cirlab.synth.config import AMBIGUITY_LEVELS, DEFAULT_AMBIGUITY, DEFAULT_FORMAT, FORMATS, SynthConfig

    add_out(parser, "folder to write (new, empty, or an earlier output of the same options)", required=True)
    parser.add_argument("--preset", choices=("default", "tiny"), default="default",
                        help="size preset (default: %(default)s)")
    add_seed(parser, None, "every draw", default_text=str(SynthConfig.seed))
    parser.add_argument("--images-per-category", type=int, default=None, metavar="N",
                        help="images per category, duplicates included (overrides the preset)")
    parser.add_argument("--size", type=int, default=None, metavar="PX",
                        help="image side in pixels (overrides the preset)")
    parser.add_argument("--ambiguity", choices=tuple(AMBIGUITY_LEVELS), default=DEFAULT_AMBIGUITY,
                        help="how often other gallery images satisfy a query too: attribute twins, vague captions, "
                             "colourway families (default: %(default)s, the benchmark as always written)")
    parser.add_argument("--format", choices=FORMATS, default=DEFAULT_FORMAT,
                        help="the layout to write: FashionIQ's or CIRR's (default: %(default)s)")
    parser.add_argument("--preview", type=Path, default=None, metavar="PNG",
                        help="also write a sheet of sample triplets (reference, target, captions) to this PNG")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab synth``."""
    from cirlab.synth import SynthConfig, generate

    config = SynthConfig.preset(args.preset).with_overrides(
        seed=args.seed, images_per_category=args.images_per_category, size=args.size, ambiguity=args.ambiguity,
        format=args.format)
    summary = generate(args.out, config)
    print(summary.format())
    if args.preview:
        from cirlab.synth.preview import write_triplet_sheet

        write_triplet_sheet(args.out, args.preview)
        print(f"preview: {args.preview}")
    return 0
