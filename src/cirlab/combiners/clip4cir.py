"""The CLIP4Cir Combiner (Baldrati et al., CVPR-W 2022 / TOMM 2023), layer for layer.

::

    t = dropout(relu(text_projection_layer(text)))          d -> p
    i = dropout(relu(image_projection_layer(image)))        d -> p
    c = cat(t, i)                                            2p   (text first)
    h = dropout(relu(combiner_layer(c)))                     2p -> h
    lam = dynamic_scalar(c)                                  2p -> h -> 1, sigmoid
    out = normalize(output_layer(h) + lam * text + (1 - lam) * image)

The attribute names are CLIP4Cir's, so a state dict trained by its code loads into this class
(its ``logit_scale`` of 100 belongs to cirlab's ``contrastive`` loss instead). Defaults follow the
paper's ratios: projection ``p = 4d`` and hidden ``h = 8d`` (2560 and 5120 for RN50x4's d = 640).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cirlab.combiners.base import COMBINERS, Combiner, check_dropout, resolve_width


@COMBINERS.register("combiner")
class CLIP4CirCombiner(Combiner):
    """CLIP4Cir's Combiner: projections, a fused hidden layer and a learned mix of the raw features.

    Args:
        dim: feature dimension ``d`` of the encoders.
        projection_dim: width ``p`` of each modality's projection (default ``4 * dim``).
        hidden_dim: width ``h`` of the hidden layers (default ``8 * dim``).
        dropout: dropout probability of every dropout layer (CLIP4Cir: 0.5).
    """

    def __init__(self, dim: int, projection_dim: int | None = None, hidden_dim: int | None = None,
                 dropout: float = 0.5) -> None:
        super().__init__(dim)
        self.projection_dim = resolve_width(projection_dim, self.dim, 4, "projection_dim", self.registry_name)
        self.hidden_dim = resolve_width(hidden_dim, self.dim, 8, "hidden_dim", self.registry_name)
        self.dropout = check_dropout(dropout, self.registry_name)
        p, h = self.projection_dim, self.hidden_dim

        self.text_projection_layer = nn.Linear(self.dim, p)
        self.image_projection_layer = nn.Linear(self.dim, p)
        self.dropout1 = nn.Dropout(self.dropout)
        self.dropout2 = nn.Dropout(self.dropout)
        self.combiner_layer = nn.Linear(2 * p, h)
        self.output_layer = nn.Linear(h, self.dim)
        self.dropout3 = nn.Dropout(self.dropout)
        self.dynamic_scalar = nn.Sequential(nn.Linear(2 * p, h), nn.ReLU(), nn.Dropout(self.dropout),
                                            nn.Linear(h, 1), nn.Sigmoid())

    def forward(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        """Query embeddings ``[B, d]`` (unit norm) from raw image and text features ``[B, d]``."""
        self.check_inputs(image_features, text_features)
        text_projected = self.dropout1(F.relu(self.text_projection_layer(text_features)))
        image_projected = self.dropout2(F.relu(self.image_projection_layer(image_features)))
        concatenated = torch.cat((text_projected, image_projected), dim=-1)
        hidden = self.dropout3(F.relu(self.combiner_layer(concatenated)))
        mix = self.dynamic_scalar(concatenated)  # [B, 1], the weight of the text features
        output = self.output_layer(hidden) + mix * text_features + (1 - mix) * image_features
        return F.normalize(output, dim=-1)

    def options(self) -> dict[str, Any]:
        return {"projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim, "dropout": self.dropout}
