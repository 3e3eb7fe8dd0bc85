"""The combiner contract, the combiner registry and :func:`build_combiner`.

A combiner maps a reference image's features and a caption's features (raw encoder outputs, as
CLIP4Cir feeds them) to an L2-normalised query embedding in the image space::

    combiner = build_combiner("combiner", dim=640)
    query = combiner(image_features, text_features)   # [B, d], [B, d] -> [B, d], unit norm
    build_combiner(**combiner.config())                # the same architecture again
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from cirlab.errors import ConfigError
from cirlab.registry import Registry

#: Combiner classes by name; :func:`build_combiner` instantiates them.
COMBINERS: Registry[type[Combiner]] = Registry("combiner", inputs=("dim",))


class Combiner(nn.Module):
    """Base class of every combiner: ``forward(image [B, d], text [B, d]) -> [B, d]`` (unit norm)."""

    #: The name this class is registered under (set by :data:`COMBINERS`), stored in :meth:`config`.
    registry_name: ClassVar[str] = ""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if int(dim) < 1:
            raise ConfigError(f"combiner {self.registry_name!r}: dim must be a positive integer, got {dim}")
        self.dim = int(dim)

    def forward(self, image_features: Tensor, text_features: Tensor) -> Tensor:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The keyword arguments (besides ``dim``) that rebuild this combiner."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-ready ``{"name", "dim", **options}``: ``build_combiner(**config)`` rebuilds the architecture."""
        return {"name": self.registry_name, "dim": self.dim, **self.options()}

    def check_inputs(self, image_features: Tensor, text_features: Tensor) -> None:
        """Raise ValueError unless both inputs are ``[B, dim]``."""
        expected = (image_features.shape[0], self.dim) if image_features.ndim == 2 else None
        if expected is None or tuple(image_features.shape) != expected or tuple(text_features.shape) != expected:
            raise ValueError(f"combiner {self.registry_name!r} expects image and text features of shape "
                             f"[B, {self.dim}]; got {tuple(image_features.shape)} and {tuple(text_features.shape)}")


def build_combiner(name: str, dim: int, **kwargs: Any) -> Combiner:
    """The combiner registered as ``name`` for ``dim``-dimensional features (unknown options: ConfigError)."""
    return COMBINERS.build(name, dim, **kwargs)


def resolve_width(value: int | None, dim: int, multiple: int, what: str, combiner: str) -> int:
    """``value`` or, when None, ``multiple * dim``; refuse non-positive widths."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"combiner {combiner!r}: {what} must be a positive integer, got {value!r}")
    width = multiple * dim if value is None else int(value)
    if width < 1:
        raise ConfigError(f"combiner {combiner!r}: {what} must be a positive integer, got {value}")
    return width


def check_dropout(value: float, combiner: str) -> float:
    """Refuse a dropout probability outside [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"combiner {combiner!r}: dropout must lie in [0, 1), got {value}")
    return float(value)
