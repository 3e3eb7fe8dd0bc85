"""A gated-fusion combiner: a learned, per-dimension gate chooses between the two modalities.

Design::

    t = dropout(relu(text_projection(text)))               d -> p
    i = dropout(relu(image_projection(image)))             d -> p
    g = sigmoid(gate(cat(t, i)))                           2p -> p, one weight per dimension
    m = g * t + (1 - g) * i                                the gated mix
    out = normalize(fusion(cat(m, t, i)))                  3p -> h -> d (ReLU, dropout in between)

The gate is a soft attention over the two modalities computed from both of them, per feature
dimension rather than CLIP4Cir's single scalar: a caption such as "is red" can take over the colour
dimensions while the image keeps the shape ones. Feeding the fusion MLP the mix together with both
projections lets it also model interactions the gate cannot express. Unlike CLIP4Cir there is no
residual of the raw features: the output lives wholly in the learned space. Defaults ``p = 2d``,
``h = 4d`` make it a little over a quarter of CLIP4Cir's size (16.4M parameters at d = 640 against 59.0M).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cirlab.combiners.base import COMBINERS, Combiner, check_dropout, resolve_width


@COMBINERS.register("attention-fusion")
class AttentionFusionCombiner(Combiner):
    """Gated fusion of projected image and text features, projected back to the feature size and normalised.

    Args:
        dim: feature dimension ``d`` of the encoders.
        projection_dim: width ``p`` of each modality's projection and of the gate (default ``2 * dim``).
        hidden_dim: width ``h`` of the fusion MLP's hidden layer (default ``4 * dim``).
        dropout: dropout probability after the projections and inside the fusion MLP.
    """

    def __init__(self, dim: int, projection_dim: int | None = None, hidden_dim: int | None = None,
                 dropout: float = 0.5) -> None:
        super().__init__(dim)
        self.projection_dim = resolve_width(projection_dim, self.dim, 2, "projection_dim", self.registry_name)
        self.hidden_dim = resolve_width(hidden_dim, self.dim, 4, "hidden_dim", self.registry_name)
        self.dropout = check_dropout(dropout, self.registry_name)
        p, h = self.projection_dim, self.hidden_dim

        self.text_projection = nn.Linear(self.dim, p)
        self.image_projection = nn.Linear(self.dim, p)
        self.projection_dropout = nn.Dropout(self.dropout)
        self.gate = nn.Linear(2 * p, p)
        self.fusion = nn.Sequential(nn.Linear(3 * p, h), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(h, self.dim))

    def forward(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        """Query embeddings ``[B, d]`` (unit norm) from raw image and text features ``[B, d]``."""
        self.check_inputs(image_features, text_features)
        text_projected = self.projection_dropout(F.relu(self.text_projection(text_features)))
        image_projected = self.projection_dropout(F.relu(self.image_projection(image_features)))
        gate = torch.sigmoid(self.gate(torch.cat((text_projected, image_projected), dim=-1)))
        mixed = gate * text_projected + (1 - gate) * image_projected
        fused = self.fusion(torch.cat((mixed, text_projected, image_projected), dim=-1))
        return F.normalize(fused, dim=-1)

    def options(self) -> dict[str, Any]:
        return {"projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim, "dropout": self.dropout}
