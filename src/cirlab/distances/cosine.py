"""``cosine``: ``1 - cos(x, y)``, CLIP4Cir's similarity as a distance."""

from __future__ import annotations

from pytorch_metric_learning.distances import CosineSimilarity
from torch import Tensor

from cirlab.distances.base import DISTANCES, Distance


@DISTANCES.register("cosine")
class CosineDistance(Distance):
    """One minus the cosine similarity, in [0, 2]."""

    def __init__(self) -> None:
        super().__init__(CosineSimilarity())

    def from_unit_cosine(self, cosine: Tensor) -> Tensor:
        return 1.0 - cosine

    def to_unit_cosine(self, distance: Tensor) -> Tensor:
        return 1.0 - distance
