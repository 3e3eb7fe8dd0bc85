"""What the negative samplers draw from (the training gallery) and what they know about a batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.errors import ConfigError

if TYPE_CHECKING:
    from cirlab.negatives.ledger import TrueMatches

#: Largest deviation of a feature's norm from 1 that :class:`Gallery` accepts as L2-normalised.
NORM_TOLERANCE = 1e-3


@dataclass
class Gallery:
    """The training gallery: every training image of the trained categories.

    While the encoders are frozen these features never change, so the samplers can search all of
    them at every step.
    """

    features: Tensor  # [N, d] float, L2-normalised image features
    categories: Tensor  # [N] long, category id of each item
    duplicate_groups: Tensor  # [N] long, equal value = identical content (exact duplicates), -1 = unique

    def __post_init__(self) -> None:
        features, categories, groups = self.features, self.categories, self.duplicate_groups
        if features.ndim != 2 or features.shape[0] == 0 or not features.is_floating_point():
            raise ConfigError(f"gallery features must be a non-empty float [N, d] tensor, got "
                              f"{features.dtype} {tuple(features.shape)}")
        size = features.shape[0]
        for name, values in (("categories", categories), ("duplicate_groups", groups)):
            if values.shape != (size,) or values.dtype != torch.long:
                raise ConfigError(f"gallery {name} must be a long [N] tensor with N = {size}, got "
                                  f"{values.dtype} {tuple(values.shape)}")
            if values.device != features.device:
                raise ConfigError(f"gallery {name} is on {values.device}, its features on {features.device}")
        deviation = (features.float().norm(dim=1) - 1).abs().max().item()
        if deviation > NORM_TOLERANCE:
            raise ConfigError(f"gallery features must be L2-normalised (a norm is off by {deviation:.3g}); "
                              f"build the gallery with Gallery.from_raw")

    @classmethod
    def from_raw(cls, features: Tensor, categories: Tensor, duplicate_groups: Tensor | None = None) -> Gallery:
        """A gallery of raw encoder features (normalised here); no duplicate groups by default."""
        if duplicate_groups is None:
            duplicate_groups = torch.full((features.shape[0],), -1, dtype=torch.long, device=features.device)
        return cls(F.normalize(features.float(), dim=-1), categories.long(), duplicate_groups.long())

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def dim(self) -> int:
        """Feature dimension ``d``."""
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        """Where the features live (the samplers compute there)."""
        return self.features.device

    def to(self, device: str | torch.device) -> Gallery:
        """The same gallery on ``device``."""
        return Gallery(self.features.to(device), self.categories.to(device), self.duplicate_groups.to(device))


@dataclass
class BatchInfo:
    """Per-batch facts a sampler may use besides the query embeddings.

    ``references`` and ``true_matches`` are optional facts for the negative ledger
    (:mod:`~cirlab.negatives.ledger`), which counts how many served negatives are the query's reference
    image and how many satisfy the query as well as its target does; without them those counters stay 0.
    """

    categories: Tensor  # [B] long, category id of each query
    progress: float = 0.0  # 0..1, fraction of training done (for schedules)
    references: Tensor | None = None  # [B] long, gallery index of each query's reference image, -1 when absent
    true_matches: TrueMatches | None = None  # which gallery items satisfy each query (known ground truth only)

    def to(self, device: str | torch.device) -> BatchInfo:
        """The same facts on ``device`` (ids as long)."""
        return BatchInfo(categories=self.categories.to(device).long(), progress=float(self.progress),
                         references=None if self.references is None else self.references.to(device).long(),
                         true_matches=None if self.true_matches is None else self.true_matches.to(device))
