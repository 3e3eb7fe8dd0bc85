"""A gated-fusion combiner: a learned gate chooses between the two modalities, in one of two variants.

The default variant, ``cirlab``, gates per dimension and fuses through an MLP::

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

The ``seed`` variant is the combiner of the system cirlab started from, exactly, so that its recipe
can be reproduced and compared against (``cirlab/configs/seed-*.yaml``)::

    i = relu(image_proj(image))                            d -> h
    t = relu(text_proj(text))                              d -> h
    g = sigmoid(gate(cat(i, t)))                           2h -> 1, one scalar per query
    m = g * i + (1 - g) * t
    out = normalize(output(cat(m, i, t)))                  3h -> d, a single linear layer

It has no dropout and no hidden layer after the mix; at the seed's ``h = 512`` and ``d = 640`` it has
1,641,089 parameters.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cirlab.combiners.base import COMBINERS, Combiner, check_dropout, resolve_width
from cirlab.errors import ConfigError

#: The default variant: per-dimension gate and fusion MLP.
CIRLAB = "cirlab"
#: The seed system's variant: scalar gate, one output layer, no dropout.
SEED = "seed"
VARIANTS: tuple[str, ...] = (CIRLAB, SEED)

#: Width ``h`` of the seed variant's projections when none is given (the seed's value).
SEED_HIDDEN_DIM = 512
#: Dropout of the default variant when none is given.
DEFAULT_DROPOUT = 0.5


@COMBINERS.register("attention-fusion")
class AttentionFusionCombiner(Combiner):
    """Gated fusion of projected image and text features, projected back to the feature size and normalised.

    Args:
        dim: feature dimension ``d`` of the encoders.
        projection_dim: ``cirlab`` variant: width ``p`` of each modality's projection and of the gate
            (default ``2 * dim``). The ``seed`` variant accepts it and does not use it, as the seed's own
            combiner did.
        hidden_dim: ``cirlab`` variant: width ``h`` of the fusion MLP's hidden layer (default ``4 * dim``);
            ``seed`` variant: width ``h`` of both projections (default 512, the seed's).
        dropout: ``cirlab`` variant: dropout probability after the projections and inside the fusion MLP
            (default 0.5). The ``seed`` variant has no dropout and refuses a non-zero value.
        variant: ``cirlab`` (per-dimension gate and fusion MLP, the default) or ``seed`` (the seed
            system's scalar gate and single output layer; see the module docstring).
    """

    def __init__(self, dim: int, projection_dim: int | None = None, hidden_dim: int | None = None,
                 dropout: float | None = None, variant: str = CIRLAB) -> None:
        super().__init__(dim)
        if variant not in VARIANTS:
            raise ConfigError(f"combiner {self.registry_name!r}: unknown variant {variant!r}; "
                              f"known: {', '.join(VARIANTS)}")
        self.variant = variant
        if variant == SEED:
            self._build_seed(hidden_dim, dropout)
        else:
            self._build_cirlab(projection_dim, hidden_dim, DEFAULT_DROPOUT if dropout is None else dropout)

    def _build_cirlab(self, projection_dim: int | None, hidden_dim: int | None, dropout: float) -> None:
        self.projection_dim = resolve_width(projection_dim, self.dim, 2, "projection_dim", self.registry_name)
        self.hidden_dim = resolve_width(hidden_dim, self.dim, 4, "hidden_dim", self.registry_name)
        self.dropout = check_dropout(dropout, self.registry_name)
        p, h = self.projection_dim, self.hidden_dim

        self.text_projection = nn.Linear(self.dim, p)
        self.image_projection = nn.Linear(self.dim, p)
        self.projection_dropout = nn.Dropout(self.dropout)
        self.gate = nn.Linear(2 * p, p)
        self.fusion = nn.Sequential(nn.Linear(3 * p, h), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(h, self.dim))

    def _build_seed(self, hidden_dim: int | None, dropout: float | None) -> None:
        if dropout not in (None, 0):
            raise ConfigError(f"combiner {self.registry_name!r}: variant {SEED!r} has no dropout, got dropout "
                              f"{dropout}")
        width = SEED_HIDDEN_DIM if hidden_dim is None else hidden_dim  # the seed's h does not scale with d
        self.hidden_dim = resolve_width(width, self.dim, 1, "hidden_dim", self.registry_name)
        self.dropout = 0.0
        h = self.hidden_dim

        self.image_proj = nn.Linear(self.dim, h)
        self.text_proj = nn.Linear(self.dim, h)
        self.gate = nn.Linear(2 * h, 1)
        self.output = nn.Linear(3 * h, self.dim)

    def forward(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        """Query embeddings ``[B, d]`` (unit norm) from raw image and text features ``[B, d]``."""
        self.check_inputs(image_features, text_features)
        if self.variant == SEED:
            return self._forward_seed(image_features, text_features)
        text_projected = self.projection_dropout(F.relu(self.text_projection(text_features)))
        image_projected = self.projection_dropout(F.relu(self.image_projection(image_features)))
        gate = torch.sigmoid(self.gate(torch.cat((text_projected, image_projected), dim=-1)))
        mixed = gate * text_projected + (1 - gate) * image_projected
        fused = self.fusion(torch.cat((mixed, text_projected, image_projected), dim=-1))
        return F.normalize(fused, dim=-1)

    def _forward_seed(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        image_projected = F.relu(self.image_proj(image_features))
        text_projected = F.relu(self.text_proj(text_features))
        gate = torch.sigmoid(self.gate(torch.cat((image_projected, text_projected), dim=-1)))  # [B, 1]
        fused = gate * image_projected + (1 - gate) * text_projected
        return F.normalize(self.output(torch.cat((fused, image_projected, text_projected), dim=-1)), dim=-1)

    def options(self) -> dict[str, Any]:
        if self.variant == SEED:
            return {"variant": SEED, "hidden_dim": self.hidden_dim}
        return {"projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim, "dropout": self.dropout}
