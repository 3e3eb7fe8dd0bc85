"""What a comparison produced: :class:`ComparisonResult` (summaries, baseline, verdicts, files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirlab.compare.analysis import KS, RunSummary, recall_keys

COMPARISON_FORMAT_VERSION = 1


@dataclass
class Baseline:
    """The untrained ``sum`` combiner on the same validation protocol: the floor a trained combiner must beat."""

    recall: dict[int, float]  # K -> mean Recall@K in percent
    headline: float  # mean of mean Recall@10 and mean Recall@50

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"combiner": "sum", "recall": {f"R@{k}": v for k, v in self.recall.items()},
                "headline": self.headline}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        """Inverse of :meth:`to_dict`."""
        return cls(recall=recall_keys(data["recall"]), headline=float(data["headline"]))


@dataclass
class ComparisonResult:
    """Everything :func:`cirlab.compare.compare` measured and wrote."""

    out: Path  # the comparison folder
    runs: dict[str, RunSummary]  # run name -> summary, in the order trained
    baseline: Baseline
    threshold: float  # mean Recall@10 (percent) whose first epoch is reported
    threshold_rule: str  # how the threshold was chosen, in words
    verdicts: dict[str, str] = field(default_factory=dict)  # run name -> sentence comparing it with `random`
    reused: list[str] = field(default_factory=list)  # runs finished earlier and not trained again
    files: dict[str, Path] = field(default_factory=dict)  # report, comparison.json, plots, query figures
    notes: list[str] = field(default_factory=list)  # things left out and why (e.g. no images for the figures)
    setup: dict[str, Any] = field(default_factory=dict)  # config, feature cache and budget shared by the runs

    @property
    def report(self) -> Path:
        """``OUT/report.md``."""
        return self.files["report"]

    def best_run(self) -> RunSummary:
        """The run with the highest best headline (the first of equals)."""
        return max(self.runs.values(), key=lambda run: run.best_headline)

    def format_table(self) -> str:
        """A short table for the terminal: final and best recall, threshold epoch and time per run."""
        header = (f"{'run':<22}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'R@50':>7}{'best':>8}{'@ep':>5}"
                  f"{'R@10≥' + format(self.threshold, '.1f'):>12}{'mine ms':>9}{'time s':>8}")
        lines = [header, "-" * len(header)]
        for run in self.runs.values():
            reached = "never" if run.threshold_epoch is None else f"epoch {run.threshold_epoch}"
            mining = "-" if run.sample_s_per_step is None else f"{1000 * run.sample_s_per_step:.1f}"
            lines.append(f"{run.name:<22}" + "".join(f"{run.final[k]:>7.1f}" for k in KS)
                         + f"{run.best_headline:>8.1f}{run.best_epoch:>5}{reached:>12}{mining:>9}{run.total_s:>8.0f}")
        lines.append(f"{'untrained sum':<22}" + "".join(f"{self.baseline.recall[k]:>7.1f}" for k in KS)
                     + f"{self.baseline.headline:>8.1f}")
        lines.append("R@K: final mean Recall@K over categories (%); best: best headline (mean of R@10 and R@50) "
                     "and its epoch")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, written to ``OUT/comparison.json``."""
        return {
            "format_version": COMPARISON_FORMAT_VERSION,
            "setup": self.setup,
            "threshold": {"metric": "val/mean/R@10", "value": self.threshold, "rule": self.threshold_rule},
            "baseline": self.baseline.to_dict(),
            "runs": {name: run.to_dict() for name, run in self.runs.items()},
            "verdicts": self.verdicts,
            "reused_runs": list(self.reused),
            "files": {key: str(path) for key, path in self.files.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], out: str | Path) -> ComparisonResult:
        """Read back what :meth:`to_dict` wrote (``comparison.json`` of the folder ``out``)."""
        return cls(out=Path(out), runs={name: RunSummary.from_dict(run) for name, run in data["runs"].items()},
                   baseline=Baseline.from_dict(data["baseline"]), threshold=float(data["threshold"]["value"]),
                   threshold_rule=data["threshold"]["rule"], verdicts=dict(data.get("verdicts", {})),
                   reused=list(data.get("reused_runs", [])),
                   files={key: Path(path) for key, path in data.get("files", {}).items()},
                   notes=list(data.get("notes", [])), setup=dict(data.get("setup", {})))
