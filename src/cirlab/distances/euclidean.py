"""``euclidean``: the L2 distance, by default between L2-normalised embeddings."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_metric_learning.distances import LpDistance
from torch import Tensor

from cirlab.distances.base import DISTANCES, Distance


@DISTANCES.register("euclidean")
class EuclideanDistance(Distance):
    """Euclidean distance, by default between L2-normalised embeddings (then in [0, 2]).

    Args:
        normalize: L2-normalise the embeddings first (the negative samplers always work on unit vectors).
    """

    def __init__(self, normalize: bool = True) -> None:
        super().__init__(LpDistance(p=2, power=1, normalize_embeddings=normalize))
        self.normalize = normalize

    def from_unit_cosine(self, cosine: Tensor) -> Tensor:
        # |x - y|^2 = 2 - 2 cos for unit vectors; the clamp absorbs rounding just above cos = 1.
        return torch.sqrt(torch.clamp(2.0 - 2.0 * cosine, min=0.0))

    def to_unit_cosine(self, distance: Tensor) -> Tensor:
        return 1.0 - distance * distance / 2.0

    def options(self) -> dict[str, Any]:
        return {"normalize": self.normalize}
