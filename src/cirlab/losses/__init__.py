"""Losses of the combiner stage, chosen by name: ``triplet`` and ``contrastive`` (CLIP4Cir).

Every loss is called as ``loss(queries [B, d], positives [B, d], negatives [B, k, d] | None)`` and
returns a :class:`LossOutput` (the scalar loss and its statistics).
"""

from cirlab.losses.base import LOSSES, LossOutput, build_loss
from cirlab.losses.contrastive import ContrastiveLoss
from cirlab.losses.distances import DISTANCES, CosineDistance, Distance, EuclideanDistance, build_distance
from cirlab.losses.triplet import TripletLoss

__all__ = [
    "DISTANCES", "LOSSES", "ContrastiveLoss", "CosineDistance", "Distance", "EuclideanDistance", "LossOutput",
    "TripletLoss", "build_distance", "build_loss",
]
