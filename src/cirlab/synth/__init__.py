"""The synthetic FashionIQ-format benchmark: procedurally drawn garments, triplets and relative captions.

``generate(out, SynthConfig.preset("default"))`` writes a complete data set in the FashionIQ layout
(images, split, caption and tag files) plus ``synth_meta.json`` with the ground truth; the same
configuration always gives byte-identical files. ``SynthConfig(format="cirr")`` writes the same images and
queries in CIRR's layout (:mod:`cirlab.synth.cirr`). See docs/synthetic-benchmark.md for the design.
"""

from cirlab.synth.captions import CaptionPair, relative_captions
from cirlab.synth.catalogue import Item, build_catalogue
from cirlab.synth.config import GENERATOR_VERSION, PRESETS, SynthConfig
from cirlab.synth.generate import TAG_ORDER, SynthSummary, generate, summary_from_meta
from cirlab.synth.output import META_FILE
from cirlab.synth.render import png_bytes, render_garment
from cirlab.synth.vocabulary import ATTRIBUTES, Garment, attribute_values

__all__ = [
    "ATTRIBUTES", "GENERATOR_VERSION", "META_FILE", "PRESETS", "TAG_ORDER", "CaptionPair", "Garment", "Item",
    "SynthConfig", "SynthSummary", "attribute_values", "build_catalogue", "generate", "png_bytes",
    "relative_captions", "render_garment", "summary_from_meta",
]
