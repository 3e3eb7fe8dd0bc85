"""Recall@K of composed queries against a gallery: the target's rank, computed in blocks.

The score of a query against a gallery item is their dot product (pass L2-normalised tensors to rank
by cosine similarity, as the FashionIQ protocol does). The **rank** of the target is 0-based and
deterministic, ties included:

    rank = #{gallery items scoring strictly higher than the target}
         + #{gallery items scoring exactly as high as the target and placed before it in gallery order}

which is the target's position in a stable descending sort of the scores. Recall@K is the percentage of
queries whose target has rank < K. A target that is not in the gallery (index < 0 or >= N) gets the rank
:data:`OUTSIDE_GALLERY`, which is never below any K: such a query is a miss at every K.

Cost: one matrix product per block of queries plus two elementwise comparisons and row counts over the
block's scores, done piece by piece while the piece is in cache (ties are resolved only for the rare rows
that have one); one rank per query serves every K. No top-k sort and no Python loop per query. The inputs'
finiteness is checked with one sum each (:func:`all_finite`), not elementwise. The target's own score is
read from the same product (not recomputed), so that it compares exactly equal to itself and to exact
duplicates computed alike. Hand-written rather than taken from faiss: faiss returns top-k lists, not the
rank of a given item with a defined tie order.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

#: The K of Recall@K that FashionIQ results report.
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 50)

#: Rank given to a query whose target is not in the gallery (a miss at every K).
OUTSIDE_GALLERY: int = torch.iinfo(torch.int64).max

#: Most score entries held at once (queries per block x gallery size): 2**26 float32 scores = 256 MiB.
DEFAULT_BLOCK_ELEMENTS: int = 2**26

#: Scores compared per piece of a block on CPU (8 MiB of float32, well inside a server's L3 cache).
CACHE_PIECE_ELEMENTS: int = 2**21


@torch.no_grad()
def target_ranks(queries: Tensor, gallery: Tensor, target_indices: Tensor, chunk_size: int = 1024,
                 max_block_elements: int = DEFAULT_BLOCK_ELEMENTS, check_finite: bool = True) -> Tensor:
    """0-based rank of each query's target among the gallery, by descending dot-product score.

    Args:
        queries: ``[Q, d]`` query embeddings.
        gallery: ``[N, d]`` gallery embeddings, on the same device and of the same dtype as ``queries``.
        target_indices: ``[Q]`` position of each query's target in ``gallery``; a value outside
            ``[0, N)`` (by convention -1) means the target is not in the gallery.
        chunk_size: most queries scored in one matrix product.
        max_block_elements: most scores held at once; with a very large gallery the block holds fewer
            than ``chunk_size`` queries so that memory stays bounded (the gallery is never split, so the
            target's score and its competitors' come from one product).
        check_finite: refuse NaN or infinite inputs (:func:`all_finite`: one sum over each input, a few
            percent of the product's time); a caller that already checked them (once for a gallery
            scored many times) may skip the check.

    Returns:
        ``[Q]`` int64 ranks on ``queries``' device; :data:`OUTSIDE_GALLERY` where the target is not in the
        gallery. Ties are broken by gallery order (see the module docstring).

    Raises:
        ValueError: on mismatched shapes, or non-finite queries or gallery (a NaN score would otherwise
            rank as a perfect hit).
    """
    _check_inputs(queries, gallery, target_indices, check_finite)
    if chunk_size < 1 or max_block_elements < 1:
        raise ValueError(f"chunk_size and max_block_elements must be positive, got {chunk_size}, {max_block_elements}")
    num_queries, gallery_size = queries.shape[0], gallery.shape[0]
    device = queries.device
    targets = target_indices.to(device=device, dtype=torch.long)
    inside = (targets >= 0) & (targets < gallery_size)
    ranks = torch.full((num_queries,), OUTSIDE_GALLERY, dtype=torch.long, device=device)
    if gallery_size == 0 or num_queries == 0:
        return ranks
    rows_per_block = min(num_queries, max(1, min(chunk_size, max_block_elements // gallery_size)))
    # On CPU the comparisons run piece by piece so that the second one reads the scores from cache, not
    # memory; an accelerator runs each comparison over the whole block in one kernel.
    on_cpu = device.type == "cpu"
    rows_per_piece = max(1, CACHE_PIECE_ELEMENTS // gallery_size) if on_cpu else rows_per_block
    columns = torch.arange(gallery_size, device=device)
    count_dtype = torch.int32 if gallery_size < 2**31 else torch.int64  # int32 row sums are the faster ones
    # One score buffer reused by every block: a fresh large tensor per block costs more (first-touch page
    # faults on CPU) than the comparisons themselves.
    score_buffer = torch.empty(rows_per_block, gallery_size, dtype=queries.dtype, device=device)
    mask_buffer = torch.empty(min(rows_per_piece, rows_per_block), gallery_size, dtype=torch.bool, device=device)
    for start in range(0, num_queries, rows_per_block):
        stop = min(start + rows_per_block, num_queries)
        scores = score_buffer[: stop - start]
        block_targets = targets[start:stop].clamp(0, gallery_size - 1)
        torch.matmul(queries[start:stop], gallery.T, out=scores)
        own = scores.gather(1, block_targets[:, None])
        higher = torch.empty(stop - start, dtype=torch.long, device=device)
        equal = torch.empty_like(higher)
        for a in range(0, stop - start, rows_per_piece):
            b = min(a + rows_per_piece, stop - start)
            mask = mask_buffer[: b - a]
            higher[a:b] = torch.gt(scores[a:b], own[a:b], out=mask).sum(dim=1, dtype=count_dtype)
            equal[a:b] = torch.eq(scores[a:b], own[a:b], out=mask).sum(dim=1, dtype=count_dtype)  # counts itself
        tied_rows = torch.nonzero(equal > 1).squeeze(1)
        if tied_rows.numel():
            earlier = columns[None, :] < block_targets[tied_rows, None]
            higher[tied_rows] += torch.count_nonzero((scores[tied_rows] == own[tied_rows]) & earlier, dim=1)
        ranks[start:stop] = torch.where(inside[start:stop], higher, ranks[start:stop])
    return ranks


def all_finite(tensor: Tensor) -> bool:
    """Whether every element of ``tensor`` is finite, at the cost of one sum rather than an elementwise test.

    A NaN or an infinity among the terms makes a floating-point sum NaN or infinite in any order of
    addition, so a finite sum proves every element finite. Only a non-finite sum (non-finite elements, or
    finite ones whose sum overflows) is settled elementwise. Half-precision tensors are summed in float32.
    """
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    total = tensor.sum(dtype=torch.float32) if tensor.element_size() < 4 else tensor.sum()
    return bool(torch.isfinite(total)) or bool(torch.isfinite(tensor).all())


def recall_from_ranks(ranks: Tensor, ks: Iterable[int] = DEFAULT_KS) -> dict[int, float]:
    """Recall@K in percent for each K: the share of ``ranks`` below K, times 100."""
    ks = _check_ks(ks)
    if ranks.numel() == 0:
        raise ValueError("Recall@K of zero queries is undefined")
    return {k: float((ranks < k).sum().item()) * 100.0 / ranks.numel() for k in ks}


def recall_at_k(queries: Tensor, gallery: Tensor, target_indices: Tensor, ks: Iterable[int] = DEFAULT_KS,
                chunk_size: int = 1024) -> dict[int, float]:
    """Recall@K in percent of ``queries`` against ``gallery`` (see :func:`target_ranks` for the rules)."""
    ks = _check_ks(ks)
    return recall_from_ranks(target_ranks(queries, gallery, target_indices, chunk_size=chunk_size), ks)


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    return ks


def _check_inputs(queries: Tensor, gallery: Tensor, target_indices: Tensor, check_finite: bool) -> None:
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries [Q, d] and gallery [N, d] must share d; got {tuple(queries.shape)} "
                         f"and {tuple(gallery.shape)}")
    if target_indices.shape != (queries.shape[0],):
        raise ValueError(f"target_indices must have shape ({queries.shape[0]},), got {tuple(target_indices.shape)}")
    if check_finite and not (all_finite(queries) and all_finite(gallery)):
        raise ValueError("queries and gallery must be finite (a NaN score would rank as a hit)")
