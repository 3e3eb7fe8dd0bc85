"""The parameter-free baseline: ``normalize(image + text)`` (zero-shot CLIP feature arithmetic)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from cirlab.combiners.base import COMBINERS, Combiner


@COMBINERS.register("sum")
class SumCombiner(Combiner):
    """Adds the raw image and text features and normalises; nothing to train.

    CLIP4Cir reports this as its zero-shot baseline: a floor that any trained combiner must beat.
    """

    def forward(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        """``normalize(image_features + text_features)``, ``[B, d]``."""
        self.check_inputs(image_features, text_features)
        return F.normalize(image_features + text_features, dim=-1)
