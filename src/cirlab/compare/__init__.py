"""Comparing negative-sampling strategies: several seeds each on the same budget, then a report with intervals.

``compare(config, ["random", "category", "semi-hard", "hard"], out)`` trains the runs into
``OUT/runs/<strategy>/seed-<s>/`` (resumable, finished runs reused) and writes ``OUT/report.md``,
``OUT/comparison.json``, the curves, the negative ledger and query figures; ``recompute(out)`` rebuilds
them from the run folders. See :mod:`cirlab.compare.runner` for the procedure,
:mod:`cirlab.compare.assemble` for what is computed from the runs and :mod:`cirlab.compare.statistics`
for the statistics.

Names are imported on first use, so ``import cirlab.compare`` does not load torch.
"""

from __future__ import annotations

from cirlab.lazy import lazy_exports

#: The negative-sampling strategies that ``cirlab compare`` and ``cirlab demo`` compare by default.
DEFAULT_STRATEGIES: tuple[str, ...] = ("random", "category", "semi-hard", "hard", "curriculum")

_EXPORTS = {
    "compare": "cirlab.compare.runner",
    "recompute": "cirlab.compare.runner",
    "plan_runs": "cirlab.compare.runner",
    "RunPlan": "cirlab.compare.runner",
    "CONTRASTIVE_RUN": "cirlab.compare.assemble",
    "SEED_SYSTEM_RUN": "cirlab.compare.assemble",
    "assemble": "cirlab.compare.assemble",
    "ComparisonResult": "cirlab.compare.result",
    "StrategySummary": "cirlab.compare.result",
    "Baseline": "cirlab.compare.result",
    "RunSummary": "cirlab.compare.analysis",
    "summarise": "cirlab.compare.analysis",
    "paired_bootstrap": "cirlab.compare.statistics",
    "learning_speed": "cirlab.compare.statistics",
    "verdict": "cirlab.compare.statistics",
}

__all__ = sorted([*_EXPORTS, "DEFAULT_STRATEGIES"])

__getattr__ = lazy_exports(__name__, _EXPORTS)
