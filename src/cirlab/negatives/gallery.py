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
    #: The (reference, target) gallery items of every training triplet, for samplers that use the composition
    #: structure of the data (``composition``); None when the trainer does not provide them.
    reference_targets: ReferenceTargets | None = None
    #: Per target, the other gallery items an annotation says also satisfy its queries (CIRR's positive
    #: ``target_soft`` scores); the guard never serves them as negatives of that target's queries.
    soft_positives: SoftPositives | None = None

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
        soft = self.soft_positives
        if soft is not None and (soft.keys.device != features.device or soft.size != size):
            raise ConfigError(f"gallery soft_positives are for {soft.size} items on {soft.keys.device}, the gallery "
                              f"holds {size} on {features.device}")
        pairs = self.reference_targets
        if pairs is not None:
            if pairs.references.device != features.device:
                raise ConfigError(f"gallery reference_targets are on {pairs.references.device}, its features on "
                                  f"{features.device}")
            items = torch.cat([pairs.references, pairs.targets])
            if len(items) and not 0 <= int(items.min()) <= int(items.max()) < size:
                raise ConfigError(f"gallery reference_targets must name gallery items in [0, {size}), got "
                                  f"{int(items.min())}..{int(items.max())}")

    @classmethod
    def from_raw(cls, features: Tensor, categories: Tensor, duplicate_groups: Tensor | None = None,
                 reference_targets: ReferenceTargets | None = None,
                 soft_positives: SoftPositives | None = None) -> Gallery:
        """A gallery of raw encoder features (normalised here); no duplicate groups by default."""
        if duplicate_groups is None:
            duplicate_groups = torch.full((features.shape[0],), -1, dtype=torch.long, device=features.device)
        return cls(F.normalize(features.float(), dim=-1), categories.long(), duplicate_groups.long(),
                   reference_targets, soft_positives)

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
        return Gallery(self.features.to(device), self.categories.to(device), self.duplicate_groups.to(device),
                       None if self.reference_targets is None else self.reference_targets.to(device),
                       None if self.soft_positives is None else self.soft_positives.to(device))


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

    def select(self, rows: Tensor) -> BatchInfo:
        """The facts of the queries at ``rows`` (for a sampler that serves part of a batch with another sampler)."""
        return BatchInfo(categories=self.categories[rows], progress=self.progress,
                         references=None if self.references is None else self.references[rows],
                         true_matches=None if self.true_matches is None else self.true_matches.rows(rows))


@dataclass
class ReferenceTargets:
    """Which gallery items are targets of training triplets that start from a given reference image.

    One entry per distinct (reference, target) pair of gallery items, sorted by reference and then target,
    so that the targets of a reference form one contiguous run. CIR data reuse reference images (CIRR builds
    several queries on each; the synthetic benchmark draws several targets per reference), and the targets
    of a query's reference other than its own are plausible confusions that only composed retrieval has.
    """

    references: Tensor  # [P] long, gallery index of the reference, sorted
    targets: Tensor  # [P] long, gallery index of a target of a triplet with that reference

    def __post_init__(self) -> None:
        if self.references.shape != self.targets.shape or self.references.ndim != 1 \
                or self.references.dtype != torch.long or self.targets.dtype != torch.long:
            raise ConfigError(f"reference targets must be two long [P] tensors, got {self.references.dtype} "
                              f"{tuple(self.references.shape)} and {self.targets.dtype} {tuple(self.targets.shape)}")
        if self.references.device != self.targets.device:
            raise ConfigError(f"reference targets: references on {self.references.device}, targets on "
                              f"{self.targets.device}")

    @classmethod
    def from_pairs(cls, references: Tensor, targets: Tensor) -> ReferenceTargets:
        """The table of training triplets' ``references`` and ``targets`` (gallery indices; a reference of -1,
        not in the gallery, is left out; repeated pairs are kept once)."""
        references, targets = references.long().reshape(-1), targets.long().reshape(-1)
        keep = references >= 0
        pairs = torch.unique(torch.stack([references[keep], targets[keep]], dim=1), dim=0)  # sorted rows
        return cls(pairs[:, 0].contiguous(), pairs[:, 1].contiguous())

    def __len__(self) -> int:
        return self.references.shape[0]

    def lookup(self, references: Tensor) -> tuple[Tensor, Tensor]:
        """``(targets [B, w], valid [B, w])``: the targets of each of ``references`` [B] (gallery indices, -1 for
        none), in gallery order; ``w`` is the largest number of targets any of them has."""
        start = torch.searchsorted(self.references, references, right=False)
        end = torch.searchsorted(self.references, references, right=True)
        counts = torch.where(references >= 0, end - start, torch.zeros_like(start))
        width = int(counts.max()) if counts.numel() else 0
        slots = torch.arange(width, device=references.device)[None, :]
        valid = slots < counts[:, None]
        positions = (start[:, None] + slots).clamp(max=max(len(self) - 1, 0))
        targets = self.targets[positions] if len(self) else torch.zeros_like(positions)
        return torch.where(valid, targets, torch.full_like(targets, -1)), valid

    def to(self, device: str | torch.device) -> ReferenceTargets:
        """The same table on ``device``."""
        return ReferenceTargets(self.references.to(device), self.targets.to(device))


@dataclass
class SoftPositives:
    """Which gallery items satisfy the queries of a target besides the target itself, as annotated (CIRR's
    ``target_soft``: every image with a positive score).

    Kept per target, not per query: an item annotated for any query of a target is kept from every query of
    that target, which can only keep out more than the annotation asks, never serve an annotated positive.
    Stored as sorted keys ``target * size + item`` so that membership is one binary search per pair.
    """

    keys: Tensor  # [P] long, sorted, unique
    size: int  # gallery size the keys are made for

    @classmethod
    def from_pairs(cls, targets: Tensor, items: Tensor, size: int) -> SoftPositives:
        """The table of (target, item) gallery pairs (pairs with a -1 side, or an item equal to its target, are
        left out)."""
        targets, items = targets.long().reshape(-1), items.long().reshape(-1)
        keep = (targets >= 0) & (items >= 0) & (targets != items)
        return cls(torch.unique(targets[keep] * size + items[keep]), int(size))

    def __len__(self) -> int:
        return self.keys.shape[0]

    def contains(self, targets: Tensor, items: Tensor) -> Tensor:
        """``[R, c]``: whether ``items`` (``[R, c]``, or ``[1, c]`` shared by every row) are annotated positives of
        ``targets`` [R]."""
        keys = targets[:, None] * self.size + items
        if len(self) == 0:
            return torch.zeros(keys.shape, dtype=torch.bool, device=keys.device)
        found = torch.searchsorted(self.keys, keys).clamp(max=len(self) - 1)
        return self.keys[found] == keys

    def to(self, device: str | torch.device) -> SoftPositives:
        """The same table on ``device``."""
        return SoftPositives(self.keys.to(device), self.size)
