"""A comparison's numbers, built from its run folders alone (``metrics.json`` and ``ranks.npz`` of every run).

Each run is one strategy trained with one seed. Its *reported* evaluation is the selected checkpoint's:
with ``selection = "val"`` the epoch with the best validation headline (``best/``), with ``"last"`` the last
epoch; on the test split when the data set has test targets (``reported = "test"``, evaluated by
:func:`cirlab.compare.runner.compare` after training), otherwise on validation. Every statistic is then
computed from the per-query target ranks (:mod:`cirlab.compare.statistics`): means and standard deviations
over seeds, a paired bootstrap over seeds and queries against the baseline strategy, the learning speed
against one fixed threshold, and chance level.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cirlab.compare.analysis import KS, RunSummary, best_record, evaluated, summarise
from cirlab.compare.result import Baseline, ComparisonResult, SeedSystemComparison, StrategySummary
from cirlab.compare.statistics import (
    DEFAULT_DRAWS,
    HEADLINE,
    SeedStats,
    above_chance,
    bootstrap,
    chance_recall,
    learning_speed,
    paired_bootstrap,
    recalls,
    summarise_seeds,
    verdict,
)
from cirlab.engine.runlog import METRICS_FILE
from cirlab.errors import CacheMismatchError
from cirlab.evaluation.ranks import RANKS_FILE, EvaluationRanks, evaluation_name, read_ranks

#: Checkpoint of a run that each selection rule reports.
SELECTED_CHECKPOINT: dict[str, str] = {"val": "best", "last": "last"}

#: Names of the reference runs, which are shown but never the "best strategy".
CONTRASTIVE_RUN = "contrastive-in-batch"
SEED_SYSTEM_RUN = "seed-system"
REFERENCE_RUNS: frozenset[str] = frozenset({CONTRASTIVE_RUN, SEED_SYSTEM_RUN})


def run_name(strategy: str, seed: int) -> str:
    """``<strategy>/seed-<seed>``: a run's name, and its folder below ``OUT/runs``."""
    return f"{strategy}/seed-{seed}"


@dataclass(frozen=True)
class RunEntry:
    """One run of a comparison, as ``comparison.json`` records it."""

    strategy: str  # the strategy or reference run
    seed: int
    folder: str
    description: str  # what it trains with, in words
    loss: str
    negatives: str
    mines: bool  # whether a sampler mines negatives (False for in-batch)

    @property
    def name(self) -> str:
        """``<strategy>/seed-<seed>``."""
        return run_name(self.strategy, self.seed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class _Run:
    entry: RunEntry
    summary: RunSummary
    history: list[dict[str, Any]]
    evaluation: EvaluationRanks  # the reported evaluation

    @property
    def reported(self) -> dict[str, Any]:
        """Category -> ranks of the reported evaluation (its target ranks, and subset ranks where it has them)."""
        return dict(self.evaluation)


def reported_evaluation(entry: RunEntry, history: Sequence[dict[str, Any]], evaluations: dict[str, EvaluationRanks],
                        *, selection: str, reported: str, val_split: str) -> EvaluationRanks:
    """The ranks of ``entry``'s selected checkpoint on the reported split."""
    if reported == "test":
        name = f"test/{SELECTED_CHECKPOINT[selection]}"
    else:
        epoch = int(best_record(history)["epoch"]) if selection == "val" else int(evaluated(history)[-1]["epoch"])
        name = evaluation_name(val_split, epoch)
    if name not in evaluations:
        raise CacheMismatchError(f"{Path(entry.folder) / RANKS_FILE}: no ranks of the {name} evaluation; delete the "
                                 f"run folder to train it again")
    return evaluations[name]


def load_run(entry: RunEntry, *, selection: str, reported: str, val_split: str) -> _Run:
    """A run's history, summary and reported ranks, read from its folder."""
    folder = Path(entry.folder)
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
        history = list(metrics["history"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CacheMismatchError(f"{folder / METRICS_FILE}: unreadable run metrics ({error})") from None
    evaluations = read_ranks(folder / RANKS_FILE)
    ranks = reported_evaluation(entry, history, evaluations, selection=selection, reported=reported,
                                val_split=val_split)
    summary = summarise(entry.name, history, steps=int(metrics.get("steps") or 0), description=entry.description)
    if not entry.mines:
        summary.sample_s_per_step = None
    return _Run(entry, summary, history, ranks)


def assemble(out: Path, entries: Sequence[RunEntry], *, baseline: str, selection: str, reported: str,
             untrained: Baseline, val_split: str = "val", threshold: float | None = None,
             draws: int = DEFAULT_DRAWS, queries: dict[str, Any] | None = None, setup: dict[str, Any] | None = None,
             reused: Sequence[str] = (), headline: Sequence[str] = HEADLINE) -> ComparisonResult:
    """The :class:`ComparisonResult` of the runs ``entries`` (see the module notes); ``headline`` names the
    metrics whose mean is the evaluation protocol's headline."""
    runs = [load_run(e, selection=selection, reported=reported, val_split=val_split) for e in entries]
    by_strategy: dict[str, list[_Run]] = {}
    for run in runs:
        by_strategy.setdefault(run.entry.strategy, []).append(run)
    for group in by_strategy.values():
        group.sort(key=lambda r: r.entry.seed)
    notes: list[str] = []
    galleries = {c: r.gallery_size for c, r in runs[0].evaluation.items() if len(r.ranks)}
    subsets = {c: r.subset_sizes for c, r in runs[0].evaluation.items() if len(r.ranks) and r.subset_sizes is not None}
    chance = chance_recall(galleries, headline=headline, subset_sizes=subsets or None)
    summaries = {name: _strategy(name, group, chance, draws, headline) for name, group in by_strategy.items()}
    if baseline in summaries:
        for name, summary in summaries.items():
            if name != baseline:
                _judge(summary, by_strategy[name], summaries[baseline], by_strategy[baseline], draws, notes, headline)
    else:
        notes.append(f"no '{baseline}' runs, so no strategy is judged against a baseline")
    for name, summary in summaries.items():
        if not summary.above_chance:
            notes.append(f"{name} is not clearly above chance (R@10 {summary.own.estimates['R@10'].observed:.1f}, "
                         f"chance {chance['R@10']:.1f}): no verdict is drawn for it")
    speed_baseline = baseline if baseline in summaries else next(iter(summaries))
    histories = {name: [_recall10_by_epoch(r.history) for r in group] for name, group in by_strategy.items()}
    speed = learning_speed(histories, speed_baseline, threshold)
    for name, strategy_speed in speed.strategies.items():
        if strategy_speed.never:
            notes.append(f"{name}: {strategy_speed.never} of {len(strategy_speed.epochs)} seeds never reached the "
                         f"learning-speed threshold (R@10 ≥ {speed.threshold:.1f})")
    return ComparisonResult(
        out=Path(out), strategies=summaries, baseline=baseline, selection=selection, reported=reported,
        untrained=untrained, chance=chance, speed=speed, queries=dict(queries or {}),
        versus_seed_system=_versus_seed_system(summaries, by_strategy, draws, headline),
        reused=list(reused), notes=notes, setup=dict(setup or {}))


# ------------------------------------------------------------------------------------------ pieces
def _strategy(name: str, group: list[_Run], chance: dict[str, float], draws: int,
              headline: Sequence[str]) -> StrategySummary:
    entry = group[0].entry
    final = summarise_seeds([{**{f"R@{k}": r.summary.final[k] for k in KS}, "headline": r.summary.final_headline}
                             for r in group])
    selected = summarise_seeds([recalls(r.reported, headline=headline).metrics for r in group])
    own = bootstrap([r.reported for r in group], draws=draws, headline=headline)
    mining = [r.summary.sample_s_per_step for r in group]
    steps = [r.summary.step_s for r in group]
    return StrategySummary(
        name=name, description=entry.description, loss=entry.loss, negatives=entry.negatives,
        seeds=[r.entry.seed for r in group], runs=[r.summary for r in group], final=final, selected=selected,
        own=own, above_chance=above_chance(own.estimates["R@10"], chance["R@10"]),
        mining_ms=_milliseconds(mining), step_ms=_milliseconds(steps), series=_mean_series(group))


def _judge(summary: StrategySummary, group: list[_Run], base: StrategySummary, base_group: list[_Run], draws: int,
           notes: list[str], headline: Sequence[str]) -> None:
    """The paired differences against the baseline strategy, and the verdict they support."""
    base_by_seed = {r.entry.seed: r for r in base_group}
    paired = [r for r in group if r.entry.seed in base_by_seed]
    if len(paired) < len(group):
        notes.append(f"{summary.name}: seeds {sorted(r.entry.seed for r in group if r not in paired)} have no "
                     f"{base.name} run to pair with and are left out of its comparison")
    if not paired:
        return
    summary.versus_baseline = paired_bootstrap([r.reported for r in paired],
                                               [base_by_seed[r.entry.seed].reported for r in paired], draws=draws,
                                               headline=headline)
    if summary.above_chance and base.above_chance:
        summary.verdict = verdict(summary.name, base.name, summary.versus_baseline)


def _versus_seed_system(summaries: dict[str, StrategySummary], by_strategy: dict[str, list[_Run]],
                        draws: int, headline: Sequence[str]) -> SeedSystemComparison | None:
    candidates = [s for name, s in summaries.items() if name not in REFERENCE_RUNS]
    if SEED_SYSTEM_RUN not in summaries or not candidates:
        return None
    best = max(candidates, key=lambda s: s.selected["headline"].mean)
    seed_runs = {r.entry.seed: r for r in by_strategy[SEED_SYSTEM_RUN]}
    paired = [r for r in by_strategy[best.name] if r.entry.seed in seed_runs]
    if not paired:
        return None
    difference = paired_bootstrap([r.reported for r in paired], [seed_runs[r.entry.seed].reported for r in paired],
                                  draws=draws, headline=headline)
    target = float(np.mean([r.summary.final[10] for r in by_strategy[SEED_SYSTEM_RUN]]))
    passes = [next((e for e, v in sorted(_recall10_by_epoch(r.history).items()) if v >= target), None)
              for r in by_strategy[best.name]]
    reached = [e for e in passes if e is not None]
    return SeedSystemComparison(best=best.name, difference=difference, seed_final_r10=target, passes_at=passes,
                                mean_epoch=float(np.mean(reached)) if reached else None)


def _recall10_by_epoch(history: Sequence[dict[str, Any]]) -> dict[int, float]:
    return {int(r["epoch"]): float(r["val/mean/R@10"]) for r in evaluated(history)}


def _milliseconds(seconds: Sequence[float | None]) -> SeedStats | None:
    if any(value is None for value in seconds):
        return None
    return summarise_seeds([{"ms": 1000.0 * float(value)} for value in seconds])["ms"]


def _mean_series(group: list[_Run]) -> dict[str, list[float | None]]:
    """Per-epoch means over seeds of every plotted series (epochs are the same for every seed)."""
    series = [r.summary.series for r in group]
    out: dict[str, list[float | None]] = {"epoch": list(series[0]["epoch"])}
    for key in series[0]:
        if key == "epoch":
            continue
        columns = zip(*(s.get(key, []) for s in series))
        out[key] = [float(np.mean(values)) if values and all(v is not None for v in values) else None
                    for values in columns]
    return out
