"""Recall@K of the held-out checks that encoder training reports, and what chance would score.

Two settings:

* **Description retrieval** (pretraining). Many images share one description (the synthetic set has a
  finite number of attribute combinations), so texts are the *distinct* descriptions and an image's
  correct text is its own description. Image→text: is the image's description among the K texts
  closest to it? Text→image: is any image with that description among the K closest images?
* **Composed retrieval** (fine-tuning): is the target among the K gallery images closest to the query?

Every function works on L2-normalised feature matrices and returns percentages. These are exact
matrix products over a held-out split of a few thousand items, checked once per epoch; an index
(faiss) would add nothing at this size, and the grouped text→image rule is not a plain top-k search.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import torch
from torch import Tensor

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
_BLOCK = 1024  # query rows scored at once


def image_to_text_recall(image_features: Tensor, text_features: Tensor, image_groups: Tensor,
                         ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Percent of images whose own description (``image_groups[i]``, a row of ``text_features``) ranks in the top K."""
    return composed_recall(image_features, text_features, image_groups, ks)


def text_to_image_recall(image_features: Tensor, text_features: Tensor, image_groups: Tensor,
                         ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Percent of descriptions for which some image carrying them ranks in the top K images.

    The rank of a description is the number of images scoring strictly higher than its best-scoring
    own image, so ties count in its favour as in :func:`composed_recall`.
    """
    ranks = []
    for start in range(0, text_features.shape[0], _BLOCK):
        texts = torch.arange(start, min(start + _BLOCK, text_features.shape[0]), device=text_features.device)
        scores = text_features[texts] @ image_features.T  # [block, images]
        own = image_groups.view(1, -1) == texts.view(-1, 1)
        best_own = scores.masked_fill(~own, float("-inf")).max(dim=1).values
        ranks.append((scores > best_own.view(-1, 1)).sum(dim=1))
    return _recall_from_ranks(torch.cat(ranks), ks)


def image_to_text_chance(num_texts: int, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Expected image→text Recall@K of a random ranking: K / number of distinct descriptions."""
    return {k: 100.0 * min(k, num_texts) / num_texts for k in ks}


def text_to_image_chance(group_sizes: Sequence[int], ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Expected text→image Recall@K of a random ranking.

    A description carried by ``m`` of ``n`` images is missed only when all K images drawn are among
    the other ``n - m``: probability C(n-m, K) / C(n, K).
    """
    n = sum(group_sizes)
    result = {}
    for k in ks:
        k_eff = min(k, n)
        hits = [1.0 - comb(n - m, k_eff) / comb(n, k_eff) for m in group_sizes]
        result[k] = 100.0 * sum(hits) / len(hits)
    return result


def composed_recall(query_features: Tensor, gallery_features: Tensor, target_indices: Tensor,
                    ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Percent of queries whose target (a row of ``gallery_features``) ranks in the top K.

    A query's rank is the number of gallery items scoring strictly higher than its target (ties count
    in the target's favour). Queries are scored in blocks so that memory stays bounded on large galleries.
    """
    ranks = []
    for start in range(0, query_features.shape[0], _BLOCK):
        scores = query_features[start:start + _BLOCK] @ gallery_features.T
        own = scores.gather(1, target_indices[start:start + _BLOCK].view(-1, 1))
        ranks.append((scores > own).sum(dim=1))
    return _recall_from_ranks(torch.cat(ranks), ks)


def _recall_from_ranks(ranks: Tensor, ks: Sequence[int]) -> dict[int, float]:
    return {k: 100.0 * (ranks < k).float().mean().item() for k in ks}


def composed_chance(gallery_size: int, ks: Sequence[int]) -> dict[int, float]:
    """Expected composed Recall@K of a random ranking: K / gallery size."""
    return {k: 100.0 * min(k, gallery_size) / gallery_size for k in ks}
