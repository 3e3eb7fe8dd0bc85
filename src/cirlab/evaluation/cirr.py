"""The CIRR validation protocol on cached features, as CLIP4Cir's ``compute_cirr_val_metrics`` defines it.

- **gallery** = every image of ``split.rc2.<split>.json`` that the cache holds (val: 2,297 images), in
  split-file order; CIRR has no categories (its one category is ``all``);
- **queries** = every triplet of ``cap.rc2.<split>.json`` (one caption each, encoded as it is written),
  combined as for FashionIQ and ranked by cosine similarity;
- the query's **reference image is removed from its own ranking** (it would otherwise often rank first);
- **Recall@1, 5, 10, 50** of ``target_hard`` over the gallery;
- **Recall_subset@1, 2, 3** of ``target_hard`` within the query's ``img_set.members`` without the reference
  (five images), taken in the order of the global ranking;
- **headline** = mean of Recall@5 and Recall_subset@1, as the field reports CIRR.

Ties are broken by gallery order in both rankings (a stable descending sort of the scores, as
:mod:`cirlab.evaluation.recall` states), so the subset ranking is the global ranking restricted to the subset.
A target outside the gallery, or missing from its subset, is a miss at every K of the metric concerned.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cirlab.evaluation.protocol import PROTOCOLS, Protocol
from cirlab.evaluation.recall import OUTSIDE_GALLERY
from cirlab.features.cache import FeatureCache

#: CIRR's one category (it has none of its own).
CIRR_CATEGORY = "all"


@PROTOCOLS.register("cirr")
class CirrValidation(Protocol):
    """CIRR: Recall@1/5/10/50 without the reference, Recall_subset@1/2/3, headline = mean of R@5 and Rs@1."""

    title = "CIRR"
    subset_ks = (1, 2, 3)
    headline_metrics = ("R@5", "Rs@1")
    datasets = ("cirr",)

    def __init__(self, cache: FeatureCache, split: str = "val", categories: list[str] | None = None,
                 device: torch.device | str = "cpu", batch_size: int = 1024) -> None:
        super().__init__(cache, split=split, categories=categories, device=device, batch_size=batch_size)
        self._subsets = {c: torch.from_numpy(q.subset_indices(cache)).to(self.device)
                         for c, q in self.queries.items()}
        self._references = {c: torch.from_numpy(q.reference_indices).to(self.device) for c, q in self.queries.items()}

    def rank(self, category: str, start: int, queries: Tensor) -> tuple[Tensor, Tensor]:
        stop = start + len(queries)
        targets = self.query_inputs(category)[2][start:stop]
        return cirr_ranks(queries, self.gallery(category), targets, self._references[category][start:stop],
                          self._subsets[category][start:stop])

    def scores(self, category: str, start: int, queries: Tensor) -> Tensor:
        references = self._references[category][start:start + len(queries)]
        return masked_scores(queries, self.gallery(category), references)

    def subset_sizes(self, category: str) -> np.ndarray:
        return (self._subsets[category] >= 0).sum(dim=1).cpu().numpy()

    def description(self) -> str:
        return ("gallery = every image of the split, the query's reference removed from its ranking; subset = "
                "img_set members without the reference, in the global ranking's order; cosine similarity")


def masked_scores(queries: Tensor, gallery: Tensor, references: Tensor) -> Tensor:
    """``[Q, N]`` scores of ``queries`` against ``gallery`` with each query's reference (its gallery position,
    ``-1`` when outside it) set to ``-inf``, so that it ranks after every other image."""
    scores = queries @ gallery.T
    rows = torch.nonzero(references >= 0).squeeze(1)
    scores[rows, references[rows]] = float("-inf")
    return scores


@torch.no_grad()
def cirr_ranks(queries: Tensor, gallery: Tensor, targets: Tensor, references: Tensor,
               subsets: Tensor) -> tuple[Tensor, Tensor]:
    """0-based rank of each target in the gallery without the query's reference, and within its subset.

    Args:
        queries: ``[Q, d]`` normalised query embeddings; ``gallery``: ``[N, d]`` normalised gallery features.
        targets: ``[Q]`` gallery position of each target (``-1``: outside the gallery).
        references: ``[Q]`` gallery position of each reference (``-1``: outside the gallery, nothing removed).
        subsets: ``[Q, S]`` gallery positions of each query's subset members other than its reference
            (``-1`` pads).

    Returns:
        ``(ranks, subset_ranks)``, int64; :data:`~cirlab.evaluation.recall.OUTSIDE_GALLERY` for a target outside
        the gallery (both) or outside its subset (the subset rank).
    """
    gallery_size = gallery.shape[0]
    scores = masked_scores(queries, gallery, references)
    inside = (targets >= 0) & (targets < gallery_size)
    column = targets.clamp(0, max(gallery_size - 1, 0))[:, None]
    own = scores.gather(1, column)
    positions = torch.arange(gallery_size, device=scores.device)[None, :]
    before = (scores > own) | ((scores == own) & (positions < column))
    outside = torch.full_like(targets, OUTSIDE_GALLERY, dtype=torch.long)
    ranks = torch.where(inside, before.sum(dim=1), outside)

    members = subsets.clamp(min=0)
    member_before = before.gather(1, members) & (subsets >= 0) & (subsets != column)
    in_subset = (subsets == column).any(dim=1) & inside
    subset_ranks = torch.where(in_subset, member_before.sum(dim=1), outside)
    return ranks, subset_ranks


def subset_order(scores: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``members`` (gallery positions, ``-1`` pads dropped) in the order of the global ranking of ``scores``
    (descending score, ties by gallery position): the subset ranking a submission reports."""
    members = members[members >= 0]
    order = np.lexsort((members, -scores[members]))
    return members[order]
