"""The distance contract, the distance registry and :func:`build_distance`.

The arithmetic is pytorch-metric-learning's (each cirlab distance wraps one of its distance objects,
which also normalise the embeddings). This module adds the one contract cirlab needs on top of them:

* :meth:`Distance.pairwise` broadcasts over leading dimensions (``[B, d]`` against ``[B, k, d]``), where
  pytorch-metric-learning's ``pairwise_distance`` takes two ``[n, d]`` matrices;
* every value is a *distance* (smaller = closer): cosine similarity ``s`` is reported as ``1 - s``, so
  that a loss or a statistic reads the same whatever the distance;
* :meth:`Distance.from_unit_cosine` converts the cosine of two unit vectors into the distance, strictly
  decreasing in the cosine (and :meth:`Distance.to_unit_cosine` back). The negative samplers therefore
  mine the whole gallery with one matrix product of normalised features and compare cosines against
  per-query bounds converted from distances; "closest" is the same item under every distance.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pytorch_metric_learning.distances import BaseDistance
from torch import Tensor

from cirlab.registry import Registry


class Distance:
    """A distance over embeddings backed by a pytorch-metric-learning distance object."""

    #: The name this class is registered under (set by :data:`DISTANCES`), used in configs.
    registry_name: ClassVar[str] = ""

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
        """The distance between two unit vectors whose cosine is ``cosine`` (elementwise, decreasing)."""
        raise NotImplementedError

    def to_unit_cosine(self, distance: Tensor) -> Tensor:
        """The inverse of :meth:`from_unit_cosine`: the cosine of two unit vectors ``distance`` apart."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this distance."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-ready ``{"name", **options}`` that :func:`build_distance` rebuilds this distance from."""
        return {"name": self.registry_name, **self.options()}

    def _as_distance(self, values: Tensor) -> Tensor:
        return 1.0 - values if self.metric.is_inverted else values

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


#: Distance classes by config name; :func:`build_distance` instantiates them.
DISTANCES: Registry[type[Distance]] = Registry("distance")


def build_distance(spec: str | dict[str, Any] | Distance) -> Distance:
    """A :class:`Distance` from a name (``"cosine"``), a config dict (``{"name": "euclidean", ...}``) or itself."""
    if isinstance(spec, Distance):
        return spec
    if isinstance(spec, dict):
        options = dict(spec)
        return DISTANCES.build(options.pop("name", None), **options)
    return DISTANCES.build(spec)
