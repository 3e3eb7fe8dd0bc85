"""Comparing negative-sampling strategies: one training run each on the same budget, then a report.

``compare(config, ["random", "category", "semi-hard", "hard"], out)`` trains the runs into
``OUT/runs/<strategy>/`` (resumable, finished runs reused) and writes ``OUT/report.md``,
``OUT/comparison.json``, the Recall@10 and training curves, and query figures. See
:mod:`cirlab.compare.runner` for the procedure and :mod:`cirlab.compare.analysis` for the arithmetic.

Names are imported on first use, so ``import cirlab.compare`` does not load torch.
"""

from __future__ import annotations

from cirlab.lazy import lazy_exports

#: The negative-sampling strategies that ``cirlab compare`` and ``cirlab demo`` compare by default.
DEFAULT_STRATEGIES: tuple[str, ...] = ("random", "category", "semi-hard", "hard", "curriculum")

_EXPORTS = {
    "compare": "cirlab.compare.runner",
    "plan_runs": "cirlab.compare.runner",
    "RunPlan": "cirlab.compare.runner",
    "CONTRASTIVE_RUN": "cirlab.compare.runner",
    "ComparisonResult": "cirlab.compare.result",
    "Baseline": "cirlab.compare.result",
    "RunSummary": "cirlab.compare.analysis",
    "DEFAULT_THRESHOLD_FRACTION": "cirlab.compare.analysis",
    "default_threshold": "cirlab.compare.analysis",
    "first_epoch_reaching": "cirlab.compare.analysis",
    "summarise": "cirlab.compare.analysis",
    "verdict": "cirlab.compare.analysis",
}

__all__ = sorted([*_EXPORTS, "DEFAULT_STRATEGIES"])

__getattr__ = lazy_exports(__name__, _EXPORTS)
