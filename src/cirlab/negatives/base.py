"""The negative-sampler contract, the sampler registry, and the base class that checks inputs and counts.

Every sampler answers one question: given the batch's query embeddings and the gallery indices of
their targets, which ``k`` gallery items should each query be pushed away from? ::

    sampler = build_sampler("semi-hard", gallery, margin=0.2)
    negatives = sampler.sample(queries, positives, BatchInfo(categories, progress), k=16, generator=g)
    sampler.stats()   # {"queries": ..., "guard_exact_duplicates": ..., "fallback_negatives": ...}

Each sampler class declares the statistics it reports (``logged_stats``) and which of them are states
rather than counters (``gauge_stats``), so that whoever logs them needs no list of its own. Every
sampler also keeps the negative ledger (:mod:`~cirlab.negatives.ledger`): :meth:`GallerySampler.sample`
tallies what ``_sample`` served, once, for every strategy.

Samplers are pure functions of their inputs and the ``torch.Generator`` (their statistics aside), so
the same seed gives the same negatives, and each can be tested against a naive loop.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from cirlab.distances import build_distance
from cirlab.errors import ConfigError
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD, DuplicateGuard, GuardFlags
from cirlab.negatives.ledger import DEFAULT_LEDGER_MARGIN, LEDGER_STATS, Ledger
from cirlab.negatives.screen import GalleryScreen
from cirlab.registry import Registry

#: Counters every sampler reports: queries served, negatives returned, candidates the false-negative
#: guard blocked, negatives that did not come from the strategy's own rule (see each sampler's
#: fallback), then the negative ledger's :data:`~cirlab.negatives.ledger.LEDGER_STATS`.
#:
#: ``guard_exact_duplicates`` / ``guard_near_duplicates`` count would-be negatives that the strategy's
#: own rule chose and the guard blocked, as exact duplicates of the target (same pixels: same
#: duplicate group) or near-duplicates (feature cosine with the target above the threshold). Drawing
#: samplers (``random``, ``category``) count every draw that landed on one (it is redrawn, so a slot
#: can be blocked more than once); ranking samplers count the duplicates among the items their
#: unguarded rule would have taken (``semi-hard``: its first ``k`` window picks; ``hard``: its ``top_m``
#: pool, the ``k`` closest without ``top_m``). Exclusions inside a fallback's exact scan are not counted.
COMMON_STATS: tuple[str, ...] = (
    "queries", "negatives", "guard_exact_duplicates", "guard_near_duplicates", "fallback_negatives",
    *LEDGER_STATS,
)


@runtime_checkable
class NegativeSampler(Protocol):
    """What the trainer calls; every registered sampler implements it."""

    def sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
               generator: torch.Generator) -> Tensor:
        """queries [B, d] L2-normalised, positives [B] gallery indices of the targets → [B, k] gallery
        indices; never the positive nor one of its guarded duplicates."""
        ...

    def stats(self) -> dict[str, float]:
        """Counters accumulated since the last :meth:`reset_stats`."""
        ...

    def reset_stats(self) -> None:
        """Zero the counters."""
        ...

    #: The keys :meth:`stats` reports.
    logged_stats: tuple[str, ...]
    #: Keys of :attr:`logged_stats` merged over processes by their maximum (states), not their sum.
    gauge_stats: frozenset[str]


#: Sampler classes by name; :func:`build_sampler` instantiates them.
SAMPLERS: Registry[type[GallerySampler]] = Registry("negative sampler", inputs=("gallery",))


def build_sampler(name: str, gallery: Gallery, **kwargs: Any) -> GallerySampler:
    """The sampler registered as ``name`` over ``gallery`` (unknown options: ConfigError)."""
    return SAMPLERS.build(name, gallery, **kwargs)


class GallerySampler:
    """Base of the samplers: input checks, the duplicate guard, chunking and the statistics.

    Args:
        gallery: the training gallery.
        near_duplicate_threshold: feature cosine above which an item is a near-duplicate of the target
            and never a negative (None: only exact duplicates are excluded).
        chunk_size: gallery items scored at once by mining scans; None sizes chunks to the batch so that
            one chunk holds about 8M similarities (:data:`~cirlab.negatives.scan.CHUNK_ELEMENTS`).
        ledger_margin: width of the negative ledger's semi-hard window in cosine distance (match the triplet
            loss's margin); None: :data:`~cirlab.negatives.ledger.DEFAULT_LEDGER_MARGIN`, or the sampler's
            own margin where it has one (``semi-hard``). It only changes what the ledger reports.
    """

    #: The name this class is registered under (set by :data:`SAMPLERS`).
    registry_name: ClassVar[str] = ""
    #: The keys :meth:`stats` reports: :data:`COMMON_STATS`, then the sampler's own counters. Declared
    #: by each class; an instance that reports more (a curriculum: its stages') extends its own copy.
    logged_stats: tuple[str, ...] = COMMON_STATS
    #: Keys of :attr:`logged_stats` that are states, not counters: merged over processes by their
    #: maximum instead of their sum.
    gauge_stats: frozenset[str] = frozenset()

    def __init__(self, gallery: Gallery, near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        if not isinstance(gallery, Gallery):
            raise ConfigError(f"negative sampler {self.registry_name!r} needs a Gallery, "
                              f"got {type(gallery).__name__}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ConfigError(f"negative sampler {self.registry_name!r}: chunk_size must be at least 1 (or null for "
                              f"automatic), got {chunk_size}")
        if ledger_margin is not None and not float(ledger_margin) > 0:
            raise ConfigError(f"negative sampler {self.registry_name!r}: ledger_margin must be positive (or null "
                              f"for the default), got {ledger_margin}")
        self.gallery = gallery
        self.guard = DuplicateGuard(gallery, near_duplicate_threshold)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.ledger_margin = None if ledger_margin is None else float(ledger_margin)
        self.ledger = Ledger(DEFAULT_LEDGER_MARGIN if ledger_margin is None else ledger_margin,
                             build_distance("cosine"))
        self._counters: dict[str, Tensor] = {}
        self._screen: GalleryScreen | None = None
        self.reset_stats()

    # ---------------------------------------------------------------- the contract
    def sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
               generator: torch.Generator) -> Tensor:
        """``[B, k]`` gallery indices of negatives for each query (never its target or a guarded duplicate).

        Inputs may live on any device and need not be normalised nor detached; the work and the result
        are on the gallery's device, in float32 whatever autocast is active. The served negatives are
        tallied into the ledger's counters (they only read the result).
        """
        device = self.gallery.device
        self._check_inputs(queries, positives, batch, k, generator)
        if positives.shape[0] == 0:
            return torch.empty((0, int(k)), dtype=torch.long, device=device)
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            queries = F.normalize(queries.detach().to(device=device, dtype=self.gallery.features.dtype), dim=-1)
            positives = positives.to(device)
            batch = batch.to(device)
            negatives = self._sample(queries, positives, batch, int(k), generator)
            self._record_ledger(queries, positives, batch, negatives)
        self.count("queries", positives.shape[0])
        self.count("negatives", negatives.numel())
        return negatives

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _record_ledger(self, queries: Tensor, positives: Tensor, batch: BatchInfo, negatives: Tensor) -> None:
        """Add the served ``negatives`` to the ledger's counters."""
        for name, value in self.ledger.tally(self.gallery, queries, positives, batch, negatives).items():
            self.count(name, value)

    # ---------------------------------------------------------------- statistics
    def stats(self) -> dict[str, float]:
        """Counters since the last reset (read back from the device here, not during sampling)."""
        return {name: float(value) for name, value in self._counters.items()}

    def reset_stats(self) -> None:
        """Zero every counter."""
        self._counters = {name: torch.zeros((), dtype=torch.float64, device=self.gallery.device)
                          for name in type(self).logged_stats}

    def count(self, name: str, value: Tensor | int | float) -> None:
        """Add ``value`` to counter ``name`` (tensors stay on the device: no synchronisation)."""
        self._counters[name] = self._counters[name] + value

    def config(self) -> dict[str, Any]:
        """The sampler's name and options, for logs and run records."""
        return {"name": self.registry_name, "near_duplicate_threshold": self.guard.near_duplicate_threshold,
                "chunk_size": self.chunk_size, "ledger_margin": self.ledger_margin, **self.options()}

    def options(self) -> dict[str, Any]:
        """Options specific to this sampler (for :meth:`config`)."""
        return {}

    # ---------------------------------------------------------------- helpers
    def _check_inputs(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                      generator: torch.Generator) -> None:
        name = self.registry_name
        size = positives.shape[0] if positives.ndim == 1 else -1
        if queries.ndim != 2 or queries.shape != (size, self.gallery.dim):
            raise ValueError(f"{name}: queries must be [B, {self.gallery.dim}] and positives [B]; got "
                             f"{tuple(queries.shape)} and {tuple(positives.shape)}")
        if positives.dtype != torch.long or (size and not 0 <= int(positives.min()) <= int(positives.max())
                                             < len(self.gallery)):
            raise ValueError(f"{name}: positives must be long gallery indices in [0, {len(self.gallery)})")
        if batch.categories.shape != (size,):
            raise ValueError(f"{name}: batch.categories must be [B] = [{size}], "
                             f"got {tuple(batch.categories.shape)}")
        if batch.references is not None and batch.references.shape != (size,):
            raise ValueError(f"{name}: batch.references must be [B] = [{size}], "
                             f"got {tuple(batch.references.shape)}")
        matches = batch.true_matches
        if matches is not None and (len(matches) != size or matches.item_bits.shape[0] != len(self.gallery)):
            raise ValueError(f"{name}: batch.true_matches must hold one rule per query ({size}) and bits for "
                             f"every gallery item ({len(self.gallery)}); got {len(matches)} and "
                             f"{matches.item_bits.shape[0]}")
        if int(k) < 1:
            raise ConfigError(f"{name}: the number of negatives per query must be at least 1, got {k}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"{name}: generator must be a torch.Generator, got {type(generator).__name__}")

    def screen(self, rows: int) -> GalleryScreen | None:
        """The gallery's bf16 screen (:mod:`~cirlab.negatives.screen`) when it is faster than the fp32 scan for a
        batch of ``rows`` queries, else None; made on first use (a bf16 copy of the features) and kept, as the
        gallery's features are (a gallery whose features change gets a new sampler)."""
        if not GalleryScreen.pays(self.gallery, rows):
            return None
        if self._screen is None:
            self._screen = GalleryScreen(self.gallery)
        return self._screen

    def closest(self, queries: Tensor, positives: Tensor, width: int) -> tuple[Tensor, Tensor, GuardFlags]:
        """``(indices, valid, flags)``: each query's ``width`` most similar gallery items, most similar first, before
        the guard, and the guard's flags for them (the fast path of the samplers that rank the closest items: the
        guard is applied afterwards, with :meth:`guarded_top` for queries with too many guarded items)."""
        from cirlab.negatives.scan import RunningTopK, scan_gallery

        ranking = RunningTopK(positives.shape[0], width, fill=float("-inf"), dtype=queries.dtype,
                              device=queries.device)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size):
            ranking.update(chunk.cosines, chunk.columns)
        _, indices, valid = ranking.result()
        return indices, valid, self.guard.flags(positives, indices.clamp(min=0))

    def guarded_top(self, queries: Tensor, positives: Tensor, depth: int) -> tuple[Tensor, Tensor]:
        """``(indices, valid)``: the ``depth`` most similar admissible items of each query over the whole gallery,
        most similar first, the guard applied to every item (the slow path of the samplers that rank the closest
        items, for queries with more guarded items among them than their slack)."""
        from cirlab.negatives.scan import RunningTopK, scan_gallery

        ranking = RunningTopK(positives.shape[0], depth, fill=float("-inf"), dtype=queries.dtype,
                              device=queries.device)
        for chunk in scan_gallery(self.gallery, positives, queries, self.chunk_size, guard=self.guard):
            ranking.update(chunk.cosines.masked_fill_(chunk.flags.excluded, float("-inf")), chunk.columns)
        _, indices, valid = ranking.result()
        return indices, valid

    def add_guard_counts(self, exact: Tensor, near: Tensor) -> None:
        """Count guard firings: ``exact`` and ``near`` are masks (or counts) of blocked would-be negatives."""
        self.count("guard_exact_duplicates", exact.sum())
        self.count("guard_near_duplicates", near.sum())
