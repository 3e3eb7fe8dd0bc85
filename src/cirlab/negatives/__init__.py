"""Negative samplers, chosen by name: ``random``, ``category``, ``semi-hard``, ``hard``, ``curriculum``,
``positive-aware`` (NV-Retriever), ``score-window`` (SimANS), ``rank-window``, ``mixed``, ``composition``
and ``drop-pool`` (QuRe).

Every sampler searches the whole training :class:`Gallery` (chunked, so hundreds of thousands of
features fit), never returns a query's target or the target's duplicates (:mod:`~cirlab.negatives.guard`),
and is a pure function of its inputs and a ``torch.Generator``. Every sampler keeps the negative ledger
(:mod:`~cirlab.negatives.ledger`), a per-epoch summary of what it served; :func:`ledger_shares` reads it.
"""

from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler, NegativeSampler, build_sampler
from cirlab.negatives.category import CategorySampler
from cirlab.negatives.composition import CompositionSampler
from cirlab.negatives.curriculum import CurriculumSampler
from cirlab.negatives.drop_pool import DropPoolSampler
from cirlab.negatives.gallery import BatchInfo, Gallery, ReferenceTargets
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD, DuplicateGuard, GuardFlags
from cirlab.negatives.hard import HardSampler
from cirlab.negatives.ledger import LEDGER_STATS, TrueMatches, ledger_shares
from cirlab.negatives.mixed import MixedSampler
from cirlab.negatives.positive_aware import PositiveAwareSampler
from cirlab.negatives.rank_window import RankWindowSampler
from cirlab.negatives.scan import CHUNK_ELEMENTS
from cirlab.negatives.score_window import ScoreWindowSampler
from cirlab.negatives.semi_hard import SemiHardSampler
from cirlab.negatives.uniform import RandomSampler

__all__ = [
    "CHUNK_ELEMENTS", "COMMON_STATS", "DEFAULT_NEAR_DUPLICATE_THRESHOLD", "LEDGER_STATS", "SAMPLERS", "BatchInfo",
    "CategorySampler", "CompositionSampler", "CurriculumSampler", "DropPoolSampler", "DuplicateGuard", "Gallery",
    "GallerySampler", "GuardFlags", "HardSampler", "MixedSampler", "NegativeSampler", "PositiveAwareSampler",
    "RandomSampler", "RankWindowSampler", "ReferenceTargets", "ScoreWindowSampler", "SemiHardSampler",
    "TrueMatches", "build_sampler", "ledger_shares",
]
