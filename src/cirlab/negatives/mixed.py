"""``mixed``: a share of each query's negatives from one sampler and the rest from another.

Facebook's embedding-based retrieval (Huang et al., "Embedding-based Retrieval in Facebook Search", KDD 2020)
found that training on hard negatives alone was worse than on random ones, and that a blend of the two was
best. ``mixed`` builds such a blend from any two registered samplers (``first``, ``second``, each with its
own options); by default half hard, half random.

Each query's ``k`` negatives are split by ``share``: ``round_half_up(share * k)`` slots are drawn by the
first sampler and the rest by the second. Both are the registered samplers themselves, built over the same
gallery with the same guard, so each keeps its rule, its false-negative guard and its own counters. A
query's negatives hold no item twice where the gallery allows: the first sampler's distinct picks are
taken, then the second sampler's picks that are not among them (the second is asked for ``k`` picks, its
share plus one spare for each of the first's slots, so that a collision is replaced by its own next
choice), then, if a query is still short, uniform admissible items not yet chosen (an exact chunked scan),
and only when the gallery holds fewer than ``k`` admissible items are picks repeated. With a ``share`` of 0
or 1 the mixture is exactly the one sampler used.

Statistics: the ledger and ``queries`` / ``negatives`` describe the served negatives; the guard counters and
``fallback_negatives`` sum both samplers' (whose own counters cover every pick they were asked for, spares
included) and the slots the mixture itself filled; each sampler's own statistics follow under ``first/`` and
``second/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler, build_sampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD, DuplicateGuard
from cirlab.negatives.scan import RandomKeys, RunningTopK, compact, fill_with_fallback, scan_gallery

#: Counters of the parts that the mixture adds to its own.
_SUMMED = ("guard_exact_duplicates", "guard_near_duplicates", "fallback_negatives")


def first_occurrences(indices: Tensor, valid: Tensor) -> Tensor:
    """``[R, m]`` bool: valid entries of ``indices`` [R, m] that do not repeat an earlier valid entry of their row."""
    positions = torch.arange(indices.shape[1], device=indices.device)
    keyed = torch.where(valid, indices, -1 - positions[None, :])  # invalid entries never match anything
    ordered, order = keyed.sort(dim=1, stable=True)  # equal values keep their row order
    repeat = torch.zeros_like(valid)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    return valid & ~torch.empty_like(repeat).scatter_(1, order, repeat)


def complete_distinct(gallery: Gallery, guard: DuplicateGuard, chunk_size: int | None, positives: Tensor,
                      candidates: Tensor, valid: Tensor, k: int, generator: torch.Generator
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """``k`` distinct negatives per row from ranked ``candidates`` [R, m], completed when they run short.

    The valid candidates are taken in order, each item once. A row left with fewer than ``k`` gets uniform
    admissible items (not the target nor a guarded duplicate) that it does not hold yet, from a chunked
    scan; a gallery with fewer than ``k`` admissible items repeats picks. Candidates must be admissible.

    Returns ``(negatives [R, k], from_candidates [R] count, repeated [R] count)``.
    """
    picks, picks_valid = compact(candidates, first_occurrences(candidates, valid), k)
    from_candidates = picks_valid.sum(dim=1)
    repeated = torch.zeros_like(from_candidates)
    short = from_candidates < k
    if bool(short.any()):
        rows = short.nonzero(as_tuple=True)[0]
        held = torch.where(picks_valid[rows], picks[rows], torch.full_like(picks[rows], -1)).sort(dim=1).values
        keys = RandomKeys(len(gallery), len(rows), generator, candidates.device)
        top = RunningTopK(len(rows), k, fill=-1.0, dtype=torch.float64, device=candidates.device)
        for chunk in scan_gallery(gallery, positives[rows], None, chunk_size, guard=guard):
            columns = chunk.columns[None, :].expand(len(rows), -1).contiguous()
            at = torch.searchsorted(held, columns).clamp(max=k - 1)
            taken = held.gather(1, at) == columns
            admissible = ~chunk.flags.excluded & ~taken
            top.update(keys.chunk(chunk.start, chunk.stop).masked_fill_(~admissible, -1.0), chunk.columns)
        _, extra, extra_valid = top.result()
        picks[rows], repeated[rows] = fill_with_fallback(picks[rows], picks_valid[rows], extra, extra_valid,
                                                         positives[rows], len(gallery), k)
    return picks, from_candidates, repeated


@SAMPLERS.register("mixed")
class MixedSampler(GallerySampler):
    """A share of each query's negatives from one sampler, the rest from another (default 50% hard, 50% random).

    Args:
        first: the sampler of the first ``share`` of each query's slots (any registered name).
        second: the sampler of the other slots.
        share: the first sampler's share of the ``k`` slots, in [0, 1], rounded half up.
        first_options: keyword options of the first sampler (e.g. ``{"top_m": 32}``).
        second_options: keyword options of the second sampler.
        near_duplicate_threshold, chunk_size, ledger_margin: passed to both samplers as well (their own
            options win), so that the guard is the same for the whole mixture.
    """

    def __init__(self, gallery: Gallery, first: str = "hard", second: str = "random", share: float = 0.5,
                 first_options: Mapping[str, Any] | None = None, second_options: Mapping[str, Any] | None = None,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        if not 0 <= float(share) <= 1:
            raise ConfigError(f"mixed sampler: share must lie in [0, 1], got {share}")
        self.share = float(share)
        self.part_names = (str(first), str(second))
        self.part_options = (dict(first_options or {}), dict(second_options or {}))
        shared: dict[str, Any] = {"near_duplicate_threshold": near_duplicate_threshold, "chunk_size": chunk_size}
        if ledger_margin is not None:
            shared["ledger_margin"] = ledger_margin
        self.parts = tuple(build_sampler(name, gallery, **{**shared, **options})
                           for name, options in zip(self.part_names, self.part_options))
        prefixed = list(zip(("first", "second"), self.parts))
        self.logged_stats = (*type(self).logged_stats, *(
            f"{prefix}/{key}" for prefix, sampler in prefixed for key in sampler.logged_stats))
        self.gauge_stats = type(self).gauge_stats | {
            f"{prefix}/{key}" for prefix, sampler in prefixed for key in sampler.gauge_stats}
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)

    def split(self, k: int) -> tuple[int, int]:
        """The slots of the first and the second sampler among ``k``."""
        first = min(k, math.floor(self.share * k + 0.5))
        return first, k - first

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        first_slots, second_slots = self.split(k)
        if second_slots == 0:
            return self.parts[0].sample(queries, positives, batch, k, generator)
        if first_slots == 0:
            return self.parts[1].sample(queries, positives, batch, k, generator)
        first = self.parts[0].sample(queries, positives, batch, first_slots, generator)
        second = self.parts[1].sample(queries, positives, batch, k, generator)  # its share plus spares
        candidates = torch.cat([first, second], dim=1)
        negatives, from_parts, _ = complete_distinct(self.gallery, self.guard, self.chunk_size, positives,
                                                     candidates, torch.ones_like(candidates, dtype=torch.bool),
                                                     k, generator)
        self.count("fallback_negatives", (k - from_parts).sum())
        return negatives

    def stats(self) -> dict[str, float]:
        totals = super().stats()
        own = {key: totals[key] for key in COMMON_STATS}
        prefixed = {}
        for prefix, sampler in zip(("first", "second"), self.parts):
            for key, value in sampler.stats().items():
                prefixed[f"{prefix}/{key}"] = value
                if key in _SUMMED:
                    own[key] += value
        return {**own, **prefixed}

    def reset_stats(self) -> None:
        super().reset_stats()
        for sampler in getattr(self, "parts", ()):
            sampler.reset_stats()

    def options(self) -> dict[str, Any]:
        return {"first": self.part_names[0], "second": self.part_names[1], "share": self.share,
                "first_options": self.part_options[0], "second_options": self.part_options[1]}
