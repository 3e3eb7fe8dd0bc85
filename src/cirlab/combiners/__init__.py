"""Combiners: (reference image features, caption features) → query embedding, chosen by name.

``combiner`` (CLIP4Cir's), ``attention-fusion`` (gated fusion) and ``sum`` (zero-shot baseline).
"""

from cirlab.combiners.attention_fusion import AttentionFusionCombiner
from cirlab.combiners.base import COMBINERS, Combiner, build_combiner
from cirlab.combiners.clip4cir import CLIP4CirCombiner
from cirlab.combiners.persistence import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CombinerFileError,
    load_combiner,
    load_combiner_for,
    read_combiner_metadata,
    resolve_checkpoint,
    save_combiner,
)
from cirlab.combiners.sum import SumCombiner

__all__ = [
    "COMBINERS", "CONFIG_FILE", "WEIGHTS_FILE", "AttentionFusionCombiner", "CLIP4CirCombiner", "Combiner",
    "CombinerFileError", "SumCombiner", "build_combiner", "load_combiner", "load_combiner_for",
    "read_combiner_metadata", "resolve_checkpoint", "save_combiner",
]
