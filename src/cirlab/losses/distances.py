"""Distances between embeddings, injected into losses and samplers as objects (smaller = closer).

The arithmetic is pytorch-metric-learning's (:class:`~pytorch_metric_learning.distances.CosineSimilarity`,
:class:`~pytorch_metric_learning.distances.LpDistance`, which also normalise the embeddings). This module
adds the one contract cirlab needs on top of them:

* :meth:`Distance.pairwise` broadcasts over leading dimensions (``[B, d]`` against ``[B, k, d]``), where
  pytorch-metric-learning's ``pairwise_distance`` takes two ``[n, d]`` matrices;
* every value is a *distance*: cosine similarity ``s`` is reported as ``1 - s``, so that a loss or a
  statistic reads the same whatever the distance;
* :meth:`Distance.from_unit_cosine` converts the cosine of two unit vectors into the distance (and
  :meth:`Distance.to_unit_cosine` back), which lets the negative samplers mine the whole gallery with
  one matrix product of normalised features and compare cosines against per-query bounds.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity, LpDistance
from torch import Tensor

from cirlab.errors import ConfigError


class Distance:
    """A distance over embeddings backed by a pytorch-metric-learning distance object."""

    #: Registry-style name, used in configs (``distance: cosine``).
    name: str = ""

    def __init__(self, metric: BaseDistance) -> None:
        self.metric = metric

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        """Distance between matching rows of ``x`` and ``y`` (``[..., d]``, broadcastable) → ``[...]``."""
        x, y = torch.broadcast_tensors(x, y)
        shape = x.shape[:-1]
        flat_x = self.metric.maybe_normalize(x.reshape(-1, x.shape[-1]))
        flat_y = self.metric.maybe_normalize(y.reshape(-1, y.shape[-1]))
        values = self.metric.pairwise_distance(flat_x, flat_y)
        return self._as_distance(values).reshape(shape)

    def matrix(self, x: Tensor, y: Tensor) -> Tensor:
        """All distances between the rows of ``x`` (``[m, d]``) and ``y`` (``[n, d]``) → ``[m, n]``."""
        return self._as_distance(self.metric(x, y))

    def from_unit_cosine(self, cosine: Tensor) -> Tensor:
        """The distance between two unit vectors whose cosine is ``cosine`` (elementwise)."""
        raise NotImplementedError

    def to_unit_cosine(self, distance: Tensor) -> Tensor:
        """The inverse of :meth:`from_unit_cosine`: the cosine of two unit vectors ``distance`` apart."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-ready description that :func:`build_distance` rebuilds this distance from."""
        return {"name": self.name}

    def _as_distance(self, values: Tensor) -> Tensor:
        return 1.0 - values if self.metric.is_inverted else values

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


class CosineDistance(Distance):
    """``1 - cos(x, y)``, in [0, 2] (CLIP4Cir's similarity, as a distance)."""

    name = "cosine"

    def __init__(self) -> None:
        super().__init__(CosineSimilarity())

    def from_unit_cosine(self, cosine: Tensor) -> Tensor:
        return 1.0 - cosine

    def to_unit_cosine(self, distance: Tensor) -> Tensor:
        return 1.0 - distance


class EuclideanDistance(Distance):
    """Euclidean distance, by default between L2-normalised embeddings (then in [0, 2])."""

    name = "euclidean"

    def __init__(self, normalize: bool = True) -> None:
        super().__init__(LpDistance(p=2, power=1, normalize_embeddings=normalize))
        self.normalize = normalize

    def from_unit_cosine(self, cosine: Tensor) -> Tensor:
        # |x - y|^2 = 2 - 2 cos for unit vectors; the clamp absorbs rounding just above cos = 1.
        return torch.sqrt(torch.clamp(2.0 - 2.0 * cosine, min=0.0))

    def to_unit_cosine(self, distance: Tensor) -> Tensor:
        return 1.0 - distance * distance / 2.0

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "normalize": self.normalize}


#: Distances by config name.
DISTANCES: dict[str, type[Distance]] = {"cosine": CosineDistance, "euclidean": EuclideanDistance}


def build_distance(spec: str | dict[str, Any] | Distance) -> Distance:
    """A :class:`Distance` from a name (``"cosine"``), a config dict (``{"name": "euclidean", ...}``) or itself."""
    if isinstance(spec, Distance):
        return spec
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        spec = options.pop("name", None)
    if spec not in DISTANCES:
        raise ConfigError(f"unknown distance {spec!r}; known: {', '.join(sorted(DISTANCES))}")
    try:
        return DISTANCES[spec](**options)
    except TypeError as error:
        raise ConfigError(f"distance {spec!r}: bad options {options}: {error}") from None
