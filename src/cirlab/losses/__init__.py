"""Losses of the combiner stage, chosen by name: ``triplet``, ``contrastive`` (CLIP4Cir) and ``hn-nce`` (CoVR).

Every loss is called as ``loss(queries [B, d], positives [B, d], negatives [B, k, d] | None)`` and
returns a :class:`LossOutput` (the scalar loss and its statistics, whose keys each loss class declares in
``logged_stats``). Distances come from :mod:`cirlab.distances`, shared with the negative samplers.
"""

from cirlab.losses.base import COMMON_STATS, LOSSES, Loss, LossOutput, build_loss
from cirlab.losses.contrastive import ContrastiveLoss
from cirlab.losses.hn_nce import HardNegativeNCELoss
from cirlab.losses.triplet import TripletLoss

__all__ = ["COMMON_STATS", "LOSSES", "ContrastiveLoss", "HardNegativeNCELoss", "Loss", "LossOutput", "TripletLoss",
           "build_loss"]
