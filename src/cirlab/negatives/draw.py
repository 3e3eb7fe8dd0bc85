"""Guarded uniform draws from a part of the gallery: the machinery of the ``random`` and ``category`` samplers.

Each negative slot has a *source*: the query's category (:data:`SAME`), the other categories
(:data:`OTHER`) or the whole gallery (:data:`ANY`). With the gallery sorted by category
(:class:`CategoryLayout`), every source is at most two contiguous runs of that order, so a uniform
draw is one random number per slot, and the target is skipped by construction (the draw is over
the source minus the target, shifted past the target's rank).

A draw that hits one of the target's duplicates is redrawn (up to ``max_redraws`` times). Slots still
unresolved after that, or whose source has no admissible item at all, are settled exactly by a
chunked scan: a uniform choice among the source's admissible items, and when the source has none,
among the whole gallery's. These are counted as fallbacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cirlab.negatives.gallery import Gallery
from cirlab.negatives.guard import DuplicateGuard, no_negative_error
from cirlab.negatives.scan import RandomKeys, RunningTopK, fill_cyclic, scan_gallery, uniform

SAME, OTHER, ANY = 0, 1, 2
SOURCE_NAMES: tuple[str, ...] = ("same category", "other category", "anywhere")


class CategoryLayout:
    """The gallery's items ordered by category: category ``c`` is ``order[start:end]``."""

    def __init__(self, categories: Tensor) -> None:
        self.sorted_categories, self.order = torch.sort(categories, stable=True)
        self.rank = torch.empty_like(self.order)
        self.rank[self.order] = torch.arange(len(self.order), device=self.order.device)

    def __len__(self) -> int:
        return len(self.order)

    def span(self, categories: Tensor) -> tuple[Tensor, Tensor]:
        """``(start, end)`` of each category id in ``categories`` (an absent category gives an empty span)."""
        start = torch.searchsorted(self.sorted_categories, categories, right=False)
        end = torch.searchsorted(self.sorted_categories, categories, right=True)
        return start, end


@dataclass
class DrawResult:
    """Negatives of one guarded draw and what happened on the way."""

    negatives: Tensor  # [B, k] gallery indices
    sources: Tensor  # [B, k] source each negative finally came from (SAME, OTHER, ANY)
    fallback: Tensor  # [B, k] bool, settled by the exact scan
    widened: Tensor  # [B, k] bool, its source had no admissible item, so it came from ANY


class GuardedDraw:
    """Uniform draws per slot from its source, excluding the target and its guarded duplicates."""

    def __init__(self, gallery: Gallery, guard: DuplicateGuard, chunk_size: int | None, max_redraws: int = 8) -> None:
        self.gallery = gallery
        self.guard = guard
        self.chunk_size = chunk_size
        self.max_redraws = max_redraws
        self.layout = CategoryLayout(gallery.categories)

    def draw(self, positives: Tensor, query_categories: Tensor, sources: Tensor,
             generator: torch.Generator) -> tuple[DrawResult, Tensor, Tensor]:
        """Negatives for ``sources`` [B, k]; also returns the guard's firing masks ``(exact, near)`` [B, k].

        The guard masks count draws that hit a duplicate of the target and were redrawn.
        """
        start, end = self.layout.span(query_categories)
        segments = self._segments(sources, start[:, None], end[:, None])
        target_rank = self.layout.rank[positives][:, None]
        size, skip = _size_without_target(segments, target_rank)
        negatives = torch.full(sources.shape, -1, dtype=torch.long, device=sources.device)
        pending = size > 0
        exact_hits = torch.zeros(sources.shape, dtype=torch.float64, device=sources.device)
        near_hits = torch.zeros_like(exact_hits)
        for _ in range(self.max_redraws + 1):
            u = uniform(tuple(sources.shape), generator, sources.device)
            candidates = self._candidates(segments, size, skip, u)
            negatives = torch.where(pending, candidates, negatives)
            flags = self.guard.flags(positives, negatives.clamp(min=0))
            exact_hits += (pending & flags.exact).double()
            near_hits += (pending & flags.near).double()
            pending = pending & flags.excluded
            if not bool(pending.any()):
                break
        unresolved = pending | (size == 0)
        result = DrawResult(negatives=negatives, sources=sources.clone(), fallback=unresolved.clone(),
                            widened=torch.zeros_like(unresolved))
        if bool(unresolved.any()):
            self._settle(result, unresolved, positives, query_categories, generator)
        return result, exact_hits, near_hits

    # ---------------------------------------------------------------- uniform draws by rank
    def _segments(self, sources: Tensor, start: Tensor, end: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Each source as two runs ``(a1, n1, a2, n2)`` of the category order."""
        total = len(self.layout)
        zeros = torch.zeros_like(sources)
        a1 = torch.where(sources == SAME, start.expand_as(sources), zeros)
        n1 = torch.where(sources == SAME, (end - start).expand_as(sources),
                         torch.where(sources == OTHER, start.expand_as(sources), torch.full_like(sources, total)))
        a2 = torch.where(sources == OTHER, end.expand_as(sources), zeros)
        n2 = torch.where(sources == OTHER, (total - end).expand_as(sources), zeros)
        return a1, n1, a2, n2

    def _candidates(self, segments: tuple[Tensor, ...], size: Tensor, skip: Tensor, u: Tensor) -> Tensor:
        a1, n1, a2, _ = segments
        rank = torch.minimum((u * size).long(), (size - 1).clamp(min=0))
        rank = rank + (rank >= skip).long()
        position = torch.where(rank < n1, a1 + rank, a2 + rank - n1)
        return self.layout.order[position.clamp(0, len(self.layout) - 1)]

    # ---------------------------------------------------------------- exact settlement of leftover slots
    def _settle(self, result: DrawResult, unresolved: Tensor, positives: Tensor, query_categories: Tensor,
                generator: torch.Generator) -> None:
        """Fill unresolved slots uniformly among admissible items of their source, else of the whole gallery."""
        rows, slots = unresolved.nonzero(as_tuple=True)
        sources = result.sources[rows, slots]
        picks, available = self._exact_choice(rows, sources, positives, query_categories, generator)
        result.negatives[rows, slots] = picks
        empty = available == 0
        if bool(empty.any()):
            rows, slots = rows[empty], slots[empty]
            any_source = torch.full_like(rows, ANY)
            picks, available = self._exact_choice(rows, any_source, positives, query_categories, generator)
            if bool((available == 0).any()):
                raise no_negative_error(positives[rows[available == 0]], len(self.gallery))
            result.negatives[rows, slots] = picks
            result.sources[rows, slots] = ANY
            result.widened[rows, slots] = True

    def _exact_choice(self, rows: Tensor, sources: Tensor, positives: Tensor, query_categories: Tensor,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """For slots (``rows``, ``sources``): a uniform admissible item of the source, and how many there are.

        Slots of the same (row, source) share one scan row and take distinct items while there are
        enough (a sample without replacement), then repeat them.
        """
        group_key = rows * 3 + sources
        groups, slot_group = torch.unique(group_key, return_inverse=True)
        group_rows, group_sources = groups // 3, groups % 3
        sorted_group, order = torch.sort(slot_group, stable=True)
        first = torch.searchsorted(sorted_group, sorted_group)
        slot_rank = torch.empty_like(slot_group)
        slot_rank[order] = torch.arange(len(order), device=order.device) - first
        needed = int(slot_rank.max().item()) + 1

        group_positives = positives[group_rows]
        group_categories = query_categories[group_rows]
        keys = RandomKeys(len(self.gallery), len(groups), generator, rows.device)
        top = RunningTopK(len(groups), needed, fill=-1.0, dtype=torch.float64, device=rows.device)
        for chunk in scan_gallery(self.gallery, group_positives, None, self.chunk_size, guard=self.guard):
            same = chunk.categories[None, :] == group_categories[:, None]
            in_source = torch.where(group_sources[:, None] == SAME, same,
                                    torch.where(group_sources[:, None] == OTHER, ~same, torch.ones_like(same)))
            admissible = in_source & ~chunk.flags.excluded
            top.update(keys.chunk(chunk.start, chunk.stop).masked_fill_(~admissible, -1.0), chunk.columns)
        _, indices, valid = top.result()
        chosen, _ = fill_cyclic(indices, valid, needed)
        return chosen[slot_group, slot_rank], valid.sum(dim=1)[slot_group]


def _size_without_target(segments: tuple[Tensor, ...], target_rank: Tensor) -> tuple[Tensor, Tensor]:
    """Size of each source minus the target, and the target's rank in the source (a huge value if absent)."""
    a1, n1, a2, n2 = segments
    in_first = (target_rank >= a1) & (target_rank < a1 + n1)
    in_second = (target_rank >= a2) & (target_rank < a2 + n2)
    contains = in_first | in_second
    rank = torch.where(in_first, target_rank - a1, n1 + target_rank - a2)
    skip = torch.where(contains, rank, torch.full_like(rank, torch.iinfo(torch.long).max))
    return n1 + n2 - contains.long(), skip
