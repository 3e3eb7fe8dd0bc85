"""Distances between embeddings, chosen by name: ``cosine`` and ``euclidean``.

One registry shared by the losses and the negative samplers (as pytorch-metric-learning's
``distances`` serve both its losses and its miners), so that a loss and a sampler configured with
the same name measure closeness the same way.
"""

from cirlab.distances.base import DISTANCES, Distance, build_distance
from cirlab.distances.cosine import CosineDistance
from cirlab.distances.euclidean import EuclideanDistance

__all__ = ["DISTANCES", "CosineDistance", "Distance", "EuclideanDistance", "build_distance"]
