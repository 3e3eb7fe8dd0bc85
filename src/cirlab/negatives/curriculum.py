"""``curriculum``: negatives that grow harder over training, random → semi-hard → hard by default.

Why: with the hardest negatives from the first step, triplet training tends to collapse (every query
mapped to the same point, the loss stuck at the margin) because an untrained model's closest items
are dominated by noise and false negatives (Schroff et al., FaceNet, 2015; Hermans et al., "In
Defense of the Triplet Loss", 2017). Easy negatives first let the embedding take shape; harder ones
then refine it.

The schedule is a list of stages (any registered samplers) and the training-progress points where
each next stage takes over. With ``ramp > 0`` the change is gradual: over the ``ramp`` of progress
before a milestone, a linearly growing share of each query's ``k`` negatives comes from the next stage.
Statistics are the sum of the stages' common counters (the negative ledger included: each stage tallies
what it serves, with its own ledger window), plus each stage's own under ``"<stage>/<name>"`` and
``stage`` (the index of the stage that served most recently, a gauge). A curriculum's
``logged_stats`` and ``gauge_stats`` therefore list, beyond the class's, the prefixed keys of its stages.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from cirlab.errors import ConfigError
from cirlab.negatives.base import COMMON_STATS, SAMPLERS, GallerySampler, build_sampler
from cirlab.negatives.gallery import BatchInfo, Gallery
from cirlab.negatives.guard import DEFAULT_NEAR_DUPLICATE_THRESHOLD

DEFAULT_STAGES: tuple[str, ...] = ("random", "semi-hard", "hard")
DEFAULT_MILESTONES: tuple[float, ...] = (0.2, 0.5)


@SAMPLERS.register("curriculum")
class CurriculumSampler(GallerySampler):
    """Switches (or blends) from easier to harder samplers as training progresses.

    Training progress (0 to 1) is read from ``BatchInfo.progress``.

    Args:
        stages: sampler names, easiest first (``curriculum`` itself excluded).
        milestones: increasing progress points in (0, 1], one per stage after the first: stage ``i + 1``
            takes over at ``milestones[i]``.
        ramp: width of the blend before each milestone (0: a hard switch).
        stage_options: keyword arguments per stage name, e.g. ``{"semi-hard": {"margin": 0.2}}``.
        ledger_margin: passed to every stage when given (a stage's own ``stage_options`` win); None: each
            stage's default.
    """

    logged_stats = (*COMMON_STATS, "stage")
    gauge_stats = frozenset({"stage"})

    def __init__(self, gallery: Gallery, stages: Sequence[str] = DEFAULT_STAGES,
                 milestones: Sequence[float] = DEFAULT_MILESTONES, ramp: float = 0.0,
                 stage_options: Mapping[str, Mapping[str, Any]] | None = None,
                 near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
                 chunk_size: int | None = None, ledger_margin: float | None = None) -> None:
        stages, milestones = list(stages), [float(m) for m in milestones]
        if not stages or self.registry_name in stages:
            raise ConfigError(f"curriculum sampler: stages must list other samplers, got {stages}")
        if len(milestones) != len(stages) - 1 or any(not 0 < m <= 1 for m in milestones) \
                or any(b <= a for a, b in itertools.pairwise(milestones)):
            raise ConfigError(f"curriculum sampler: milestones must be {len(stages) - 1} increasing progress points "
                              f"in (0, 1] for stages {stages}, got {milestones}")
        widest = min([m - a for a, m in zip([0.0, *milestones], milestones)], default=1.0)
        if not 0 <= ramp <= widest:
            raise ConfigError(f"curriculum sampler: ramp must lie in [0, {widest:g}] (the smallest gap between "
                              f"milestones), got {ramp}")
        unknown = set(stage_options or {}) - set(stages)
        if unknown:
            raise ConfigError(f"curriculum sampler: stage_options for {sorted(unknown)}, not among stages {stages}")
        self.stage_names, self.milestones, self.ramp = stages, milestones, float(ramp)
        self.stage_options = {name: dict(options) for name, options in (stage_options or {}).items()}
        shared = {} if ledger_margin is None else {"ledger_margin": ledger_margin}
        self.stages = [build_sampler(name, gallery, near_duplicate_threshold=near_duplicate_threshold,
                                     chunk_size=chunk_size, **{**shared, **self.stage_options.get(name, {})})
                       for name in stages]
        stage_stats = list(zip(stages, self.stages))
        self.logged_stats = tuple(dict.fromkeys([*type(self).logged_stats, *(
            f"{name}/{key}" for name, sampler in stage_stats for key in sampler.logged_stats)]))
        self.gauge_stats = type(self).gauge_stats | {
            f"{name}/{key}" for name, sampler in stage_stats for key in sampler.gauge_stats}
        super().__init__(gallery, near_duplicate_threshold, chunk_size, ledger_margin)

    def schedule(self, progress: float) -> tuple[int, float]:
        """``(stage, share)`` at ``progress``: the current stage and the share of the next one."""
        stage = sum(progress >= m for m in self.milestones)
        if stage == len(self.milestones) or self.ramp == 0:
            return stage, 0.0
        start = self.milestones[stage] - self.ramp
        return stage, min(max((progress - start) / self.ramp, 0.0), 1.0)

    def _sample(self, queries: Tensor, positives: Tensor, batch: BatchInfo, k: int,
                generator: torch.Generator) -> Tensor:
        stage, share = self.schedule(batch.progress)
        from_next = round(share * k)
        parts = []
        if k - from_next > 0:
            parts.append(self.stages[stage].sample(queries, positives, batch, k - from_next, generator))
        if from_next > 0:
            parts.append(self.stages[stage + 1].sample(queries, positives, batch, from_next, generator))
        self._counters["stage"] = torch.full_like(self._counters["stage"], stage)
        return torch.cat(parts, dim=1)

    def _record_ledger(self, queries: Tensor, positives: Tensor, batch: BatchInfo, negatives: Tensor) -> None:
        """Nothing: each stage's ``sample`` tallied what it served, and :meth:`stats` sums the stages."""

    def stats(self) -> dict[str, float]:
        totals = {name: 0.0 for name in COMMON_STATS}
        prefixed = {}
        for name, sampler in zip(self.stage_names, self.stages):
            for key, value in sampler.stats().items():
                prefixed[f"{name}/{key}"] = value
                if key in totals and key not in ("queries", "negatives"):
                    totals[key] += value
        own = super().stats()
        totals["queries"], totals["negatives"] = own["queries"], own["negatives"]
        return {**totals, "stage": own["stage"], **prefixed}

    def reset_stats(self) -> None:
        super().reset_stats()
        for sampler in getattr(self, "stages", ()):
            sampler.reset_stats()

    def options(self) -> dict[str, Any]:
        return {"stages": self.stage_names, "milestones": self.milestones, "ramp": self.ramp,
                "stage_options": self.stage_options}
