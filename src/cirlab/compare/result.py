"""What a comparison measured: per-strategy summaries over seeds, their intervals, and everything the report says.

A :class:`ComparisonResult` is built from run folders alone (:func:`cirlab.compare.assemble.assemble`), so a
report can be recomputed at any time without retraining; :meth:`ComparisonResult.to_dict` is what
``comparison.json`` holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirlab.compare.analysis import KS, RunSummary
from cirlab.compare.statistics import BootstrapResult, LearningSpeed, SeedStats

#: Metrics summarised over seeds, in the order tables show them.
METRICS: tuple[str, ...] = (*(f"R@{k}" for k in KS), "headline")


@dataclass
class Baseline:
    """The untrained ``sum`` combiner's recall on the reported evaluation (the floor a trained combiner must beat)."""

    recall: dict[int, float]  # K -> mean Recall@K (percent)
    headline: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"combiner": "sum", "recall": {f"R@{k}": v for k, v in self.recall.items()},
                "headline": self.headline}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        """Inverse of :meth:`to_dict`."""
        return cls(recall={int(key.split("@", 1)[1]): float(v) for key, v in data["recall"].items()},
                   headline=float(data["headline"]))


@dataclass
class StrategySummary:
    """One strategy (or reference run) over its seeds."""

    name: str
    description: str  # what it trained with, in words
    loss: str
    negatives: str
    seeds: list[int]
    runs: list[RunSummary]  # per seed, in seed order
    final: dict[str, SeedStats]  # validation metrics of the last epoch, over seeds
    selected: dict[str, SeedStats]  # the reported evaluation of the selected checkpoint, over seeds
    own: BootstrapResult  # the strategy's own reported metrics with intervals
    above_chance: bool  # clearly above a random ranking (statistics.above_chance)
    versus_baseline: BootstrapResult | None = None  # paired differences against the baseline strategy
    verdict: str | None = None  # the sentence the intervals support
    mining_ms: SeedStats | None = None  # negative-mining time per step (None when nothing is mined)
    step_ms: SeedStats | None = None  # whole optimiser step
    series: dict[str, list[float | None]] = field(default_factory=dict)  # per-epoch means over seeds (plots)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "description": self.description, "loss": self.loss, "negatives": self.negatives, "seeds": self.seeds,
            "final": {k: v.to_dict() for k, v in self.final.items()},
            "selected": {k: v.to_dict() for k, v in self.selected.items()},
            "own": self.own.to_dict(), "above_chance": self.above_chance,
            "versus_baseline": self.versus_baseline.to_dict() if self.versus_baseline else None,
            "verdict": self.verdict,
            "mining_ms_per_step": self.mining_ms.to_dict() if self.mining_ms else None,
            "step_ms": self.step_ms.to_dict() if self.step_ms else None,
            "runs": {f"seed-{seed}": run.to_dict() for seed, run in zip(self.seeds, self.runs)},
            "series": self.series,
        }


@dataclass
class SeedSystemComparison:
    """cirlab's best strategy against the seed's system (the reference run of the seed's recipe)."""

    best: str  # the strategy with the highest mean reported headline
    difference: BootstrapResult  # best - seed system, paired over seeds and queries
    seed_final_r10: float  # the seed system's mean final validation R@10
    passes_at: list[int | None]  # per seed: first epoch at which the best strategy's R@10 passes it
    mean_epoch: float | None  # mean over the seeds that pass it

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"best": self.best, "difference": self.difference.to_dict(), "seed_final_R@10": self.seed_final_r10,
                "passes_at": self.passes_at, "mean_epoch": self.mean_epoch}


@dataclass
class ComparisonResult:
    """Everything :func:`cirlab.compare.compare` measured and wrote."""

    out: Path  # the comparison folder
    strategies: dict[str, StrategySummary]  # in the order trained; reference runs last
    baseline: str  # the strategy every other is judged against
    selection: str  # "last" or "val": which checkpoint of each run is reported
    reported: str  # the evaluation reported: "test" (the selected checkpoint on test) or "val"
    untrained: Baseline  # the untrained sum combiner on the reported evaluation
    chance: dict[str, float]  # a random ranking's recall on the reported galleries
    speed: LearningSpeed  # epochs to one fixed R@10 threshold
    queries: dict[str, Any] = field(default_factory=dict)  # ranked and excluded queries of each evaluation
    versus_seed_system: SeedSystemComparison | None = None
    reused: list[str] = field(default_factory=list)  # runs finished earlier and not trained again
    files: dict[str, Path] = field(default_factory=dict)  # report, comparison.json, plots, query figures
    notes: list[str] = field(default_factory=list)  # things left out and why, warnings
    setup: dict[str, Any] = field(default_factory=dict)  # config, plans, feature cache and budget shared by the runs

    @property
    def report(self) -> Path:
        """``OUT/report.md``."""
        return self.files["report"]

    def best_strategy(self) -> StrategySummary:
        """The strategy with the highest mean reported headline (reference runs included; the first of equals)."""
        return max(self.strategies.values(), key=lambda s: s.selected["headline"].mean)

    def format_table(self) -> str:
        """A short table for the terminal: mean ± sd over seeds of the reported recall, and the verdicts."""
        header = f"{'strategy':<22}" + "".join(f"{name:>14}" for name in METRICS) + f"{'mine ms':>9}"
        lines = [f"{self.reported} split, {self.selection} checkpoint, mean ± sd over "
                 f"{len(next(iter(self.strategies.values())).seeds)} seeds", header, "-" * len(header)]
        for s in self.strategies.values():
            mining = "-" if s.mining_ms is None else f"{s.mining_ms.mean:.1f}"
            lines.append(f"{s.name:<22}" + "".join(f"{_pm(s.selected[m]):>14}" for m in METRICS) + f"{mining:>9}")
        lines.append(f"{'untrained sum':<22}" + "".join(f"{self.untrained.recall[k]:>14.1f}" for k in KS)
                     + f"{self.untrained.headline:>14.1f}")
        lines.append(f"{'chance':<22}" + "".join(f"{self.chance[m]:>14.1f}" for m in METRICS))
        verdicts = [s.verdict for s in self.strategies.values() if s.verdict]
        lines += [f"- {sentence}" for sentence in verdicts]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, written to ``OUT/comparison.json``."""
        return {
            "format_version": COMPARISON_FORMAT_VERSION,
            "setup": self.setup,
            "baseline": self.baseline,
            "selection": self.selection,
            "reported": self.reported,
            "queries": self.queries,
            "untrained_sum": self.untrained.to_dict(),
            "chance": self.chance,
            "learning_speed": self.speed.to_dict(),
            "strategies": {name: s.to_dict() for name, s in self.strategies.items()},
            "versus_seed_system": self.versus_seed_system.to_dict() if self.versus_seed_system else None,
            "reused_runs": list(self.reused),
            "files": {key: str(path) for key, path in self.files.items()},
            "notes": list(self.notes),
        }


COMPARISON_FORMAT_VERSION = 2


def _pm(stats: SeedStats) -> str:
    return f"{stats.mean:.1f} ± {stats.std:.1f}"
