"""``score-window``: SimANS's ambiguous negatives, sampled around the positive's score.

SimANS (Zhou et al., "SimANS: Simple Ambiguous Negatives Sampling for Dense Text Retrieval", EMNLP 2022)
samples each query's negatives from its ``top_m`` retrieved candidates (the positive and its duplicates
excluded) with probability

    p(n) ∝ exp(-a * (s(q, n) - s(q, p) - b)^2)

so that the negatives are neither far easier than the positive (no gradient) nor far harder (likely false
negatives). The defaults are those of SimANS's code (microsoft/SimXNS, ``SimANS/``): ``a = 0.5``, ``b = 0``
(the argument defaults of its training scripts; its NQ script sets ``b = 1.0`` in a form that adds ``b``, which is
``b = -1`` here) and ``top_m = 100`` (the depth of the retrieval its candidates come from). SimANS's scores are
the dense retriever's logits (dot products fed to a softmax at temperature 1), while cirlab compares cosines
of normalised features; ``scale`` multiplies the cosines first so that ``a`` and ``b`` act on logits, and its
default 100 is the logit scale of cirlab's contrastive loss (CLIP4Cir's). With ``scale = 1`` the weights over
cosines in [-1, 1] would be nearly flat.

The ``k`` negatives are drawn without replacement (as SimANS's code does, redrawing until it has ``k``
distinct ones) by the Gumbel-top-k method: each candidate's key is ``log p(n) + G`` with ``G`` a standard
Gumbel draw, and the ``k`` largest keys are a sample without replacement in proportion to ``p``. They are
returned most similar first. The candidates are the ``top_m`` admissible items of one chunked pass (the pass
keeps ``top_m + GUARD_SLACK + 1`` items, the guard then removes the target's duplicates, and a query with more
duplicates than the slack is scanned again with the guard on every item). A query with fewer than ``k``
candidates (``top_m < k``, or a gallery with fewer than ``k`` admissible items) repeats picks, counted in
``fallback_negatives``; ``guard_exact_duplicates`` / ``guard_near_duplicates`` count the duplicates among the
``top_m`` candidates of the unguarded ranking.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import SAMPLERS, GallerySampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD, no_negative_error
from cirlab.negatives.scan import GUARD_SLACK, compact, fill_cyclic, uniform

#: SimANS's defaults (microsoft/SimXNS): the window's sharpness, its offset, and the candidate depth.
DEFAULT_A, DEFAULT_B, DEFAULT_TOP_M = 0.5, 0.0, 100
#: cirlab's contrastive logit scale (CLIP4Cir's 100): cosines times this are logits, as SimANS's scores are.
DEFAULT_SCALE = 100.0


def simans_log_weights(cosines: Tensor, target_cosines: Tensor, a: float, b: float, scale: float) -> Tensor:
    """``log p`` up to a constant: ``-a * (scale * (s(q, n) - s(q, p)) - b)^2`` for cosines [R, c] and [R]."""
    return -a * (scale * (cosines - target_cosines[:, None]) - b).square()


def gumbel(uniforms: Tensor) -> Tensor:
    """Standard Gumbel draws from uniforms in [0, 1) (0 maps to a finite, very small value)."""
    tiny = torch.finfo(uniforms.dtype).tiny
    return -torch.log(-torch.log(uniforms.clamp(min=tiny)))


@SAMPLERS.register("score-window")
class ScoreWindowSampler(GallerySampler):
    """SimANS: k of the top_m candidates drawn with probability ∝ exp(-a (scale (s_n - s_p) - b)^2).

    Args:
        a: sharpness of the window around the positive's score (SimANS: 0.5).
        b: offset of the window's peak from the positive's score, in logits (SimANS: 0).
        top_m: candidates per query, the most similar admissible items (SimANS: 100).
        scale: multiplier that turns cosines into logits before ``a`` and ``b`` apply (100: the contrastive
            loss's logit scale).
    """

    def __init__(self, gallery: Gallery, a: float = DEFAULT_A, b: float = DEFAULT_B, top_m: int = DEFAULT_TOP_M,
                 scale: float = DEFAULT_SCALE,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)
        if not float(a) >= 0:
            raise ConfigError(f"score-window sampler: a must be non-negative, got {a}")
        if int(top_m) < 1:
            raise ConfigError(f"score-window sampler: top_m must be at least 1, got {top_m}")
        if not float(scale) > 0:
            raise ConfigError(f"score-window sampler: scale must be positive, got {scale}")
        self.a, self.b, self.top_m, self.scale = float(a), float(b), int(top_m), float(scale)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        size = len(self.gallery)
        pool_size = min(self.top_m, size)
        width = min(pool_size + GUARD_SLACK + 1, size)
        indices, valid, flags = self.closest(queries, positives, width)
        candidates = valid & ~flags.positive
        in_pool = candidates & (candidates.long().cumsum(dim=1) <= pool_size)
        self.add_guard_counts(in_pool & flags.exact, in_pool & flags.near)
        pool, pool_valid = compact(indices, valid & ~flags.excluded, pool_size)

        # More duplicates than the slack among a query's closest items: rank its whole gallery under the guard.
        rescan = (pool_valid.sum(dim=1) < pool_size) & (width < size)
        if bool(rescan.any()):
            rescanned = rescan.nonzero(as_tuple=True)[0]
            pool[rescanned], pool_valid[rescanned] = self.guarded_top(queries[rescanned], positives[rescanned],
                                                                        pool_size)
        if not bool(pool_valid[:, 0].all()):
            raise no_negative_error(positives[~pool_valid[:, 0]], size)

        target_cosines = (queries * self.gallery.features[positives]).sum(dim=1)
        pool_cosines = (self.gallery.features[pool.clamp(min=0)] * queries[:, None, :]).sum(dim=2)
        log_weights = simans_log_weights(pool_cosines.double(), target_cosines.double(), self.a, self.b, self.scale)
        keys = log_weights + gumbel(uniform(tuple(pool.shape), generator, pool.device))
        keys = keys.masked_fill(~pool_valid, float("-inf"))
        take = min(k, pool_size)
        chosen = keys.topk(take, dim=1).indices.sort(dim=1).values  # pool order: most similar first
        picks, picks_valid = pool.gather(1, chosen), pool_valid.gather(1, chosen)
        negatives, repeated = fill_cyclic(picks, picks_valid, k)
        self.count("fallback_negatives", repeated.sum())
        return negatives

    def options(self) -> dict[str, float | int]:
        return {"a": self.a, "b": self.b, "top_m": self.top_m, "scale": self.scale}
