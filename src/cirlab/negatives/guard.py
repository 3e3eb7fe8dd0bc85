"""The false-negative guard: a target's duplicates are never offered as its negatives.

FashionIQ holds many exact duplicates (the same picture under several ASINs) and near-duplicates
(the same garment re-shot or re-encoded). Pushing a query away from a copy of its own target teaches
the combiner the opposite of the task, and hard mining seeks out exactly those copies, since they
sit closest to the query. Every sampler therefore excludes, for a target ``p``:

* ``p`` itself, and the items an annotation says satisfy ``p``'s queries as well (CIRR's positive
  ``target_soft`` scores, :class:`~cirlab.negatives.gallery.SoftPositives`), which count with the target;
* exact duplicates: items whose ``duplicate_groups`` value equals ``p``'s (``-1`` means unique);
* near-duplicates: items whose feature cosine with ``p``'s feature exceeds ``near_duplicate_threshold``
  (``None`` disables this rule).

The samplers count how often the guard changed what they would have returned (see their ``stats()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.gallery import Gallery

#: Default feature-cosine above which an item counts as a near-duplicate of the target.
DEFAULT_NEAR_DUPLICATE_THRESHOLD = 0.98


@dataclass
class GuardFlags:
    """Why items are excluded, for a set of (target, item) pairs; the three masks are disjoint."""

    positive: Tensor  # the item is the target itself (or an annotated positive of it)
    exact: Tensor  # an exact duplicate of the target (same duplicate group)
    near: Tensor  # a near-duplicate by feature cosine (and not an exact one)

    @property
    def excluded(self) -> Tensor:
        """Items that must not be returned as negatives."""
        return self.positive | self.exact | self.near

    @property
    def guarded(self) -> Tensor:
        """Items excluded as duplicates (not counting the target itself)."""
        return self.exact | self.near


class DuplicateGuard:
    """Decides, for gallery targets, which gallery items are their duplicates."""

    def __init__(self, gallery: Gallery, near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD):
        if near_duplicate_threshold is not None and not -1.0 <= near_duplicate_threshold <= 1.0:
            raise ConfigError(f"near_duplicate_threshold must be a cosine in [-1, 1] or null, "
                              f"got {near_duplicate_threshold}")
        self.gallery = gallery
        self.near_duplicate_threshold = near_duplicate_threshold

    @property
    def uses_features(self) -> bool:
        """Whether the near-duplicate rule is on (it needs target–item feature cosines)."""
        return self.near_duplicate_threshold is not None

    def flags(self, positives: Tensor, items: Tensor, target_cosines: Tensor | None = None) -> GuardFlags:
        """Flags of items ``items`` for targets ``positives``.

        Args:
            positives: ``[R]`` gallery indices of the targets.
            items: gallery indices, ``[R, c]`` (one set per target) or ``[c]`` (shared by all targets).
            target_cosines: ``[R, c]`` cosines of each target's feature with each item's; computed here
                when omitted and the near-duplicate rule is on.
        """
        groups = self.gallery.duplicate_groups
        features = self.gallery.features
        if items.ndim == 1:
            if target_cosines is None and self.near_duplicate_threshold is not None:
                target_cosines = features[positives] @ features[items].T
            items = items[None, :]
        target = positives[:, None]
        positive = items == target
        if self.gallery.soft_positives is not None:
            positive = positive | self.gallery.soft_positives.contains(positives, items)
        target_group = groups[positives][:, None]
        exact = (groups[items] == target_group) & (target_group >= 0) & ~positive
        if self.near_duplicate_threshold is None:
            near = torch.zeros_like(exact)
        else:
            if target_cosines is None:
                target_cosines = torch.bmm(features[items], features[positives][:, :, None]).squeeze(2)
            near = (target_cosines > self.near_duplicate_threshold) & ~positive & ~exact
        return GuardFlags(positive, exact, near)


def no_negative_error(positives: Tensor, gallery_size: int) -> ConfigError:
    """The error for targets that have no admissible negative anywhere in the gallery."""
    return ConfigError(f"no gallery item can be a negative of gallery item(s) {positives[:5].tolist()}: every one "
                       f"of the {gallery_size} items is the target or one of its duplicates (features this alike "
                       f"usually come from an untrained encoder: pretrain it, or lower or turn off the guard with the "
                       f"sampler option near_duplicate_threshold=null: `--set negatives_options."
                       f"near_duplicate_threshold=null` for cirlab train, `--negatives-option "
                       f"near_duplicate_threshold=null` for cirlab finetune)")
