"""The numbers of a comparison, computed from the runs' per-epoch histories (``metrics.json``).

Everything here is plain arithmetic on the history records that :mod:`cirlab.engine.runlog`
describes, so it can be checked by hand:

- **final** Recall@K: the last evaluated epoch's ``val/mean/R@K``;
- **best** Recall@K: the values of the epoch with the highest headline (the checkpoint kept in ``best/``),
  not the maximum of each K taken separately;
- **epoch to threshold**: the first evaluated epoch whose ``val/mean/R@10`` is at least the threshold
  (``None`` when no epoch reaches it); epoch 0 is the untrained combiner. The default threshold lies 90%
  of the way from the untrained ``sum`` combiner's Recall@10 to the best final Recall@10 of the runs
  (:func:`default_threshold`);
- **sampling time per step**: the mean of the epochs' ``time/mean_sample_s`` weighted by their steps,
  i.e. the mean over every step of the run;
- **total time**: the sum of the epochs' ``time/epoch_s`` (training and evaluation) plus the evaluation
  before training (epoch 0's ``time/eval_s``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Recall@K values reported, as the FashionIQ protocol computes them.
KS: tuple[int, ...] = (1, 5, 10, 50)

#: The metric the learning-speed threshold applies to.
THRESHOLD_METRIC = "val/mean/R@10"

#: Default threshold: this share of the way from the ``sum`` baseline's Recall@10 to the best final one.
DEFAULT_THRESHOLD_FRACTION = 0.9

#: Differences of at most this many Recall points count as "on par" in the verdicts.
TIE_POINTS = 0.5

History = Sequence[Mapping[str, Any]]


@dataclass
class RunSummary:
    """One run's headline numbers (recalls in percent, times in seconds)."""

    name: str
    epochs: int  # training epochs completed
    steps: int  # optimiser steps taken
    final: dict[int, float]  # K -> mean Recall@K of the last evaluated epoch
    final_headline: float
    best: dict[int, float]  # K -> mean Recall@K of the best epoch (by headline)
    best_headline: float
    best_epoch: int
    threshold_epoch: int | None  # first epoch with mean Recall@10 >= the threshold
    sample_s_per_step: float | None  # mean negative-mining time per step (None when nothing was mined)
    step_s: float | None  # mean time of a whole optimiser step
    total_s: float  # training and evaluation time of the run
    description: str = ""  # what the run trained with, in words
    series: dict[str, list[float | None]] = field(default_factory=dict)  # per-epoch values for the plots

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (Recall keys as ``R@K``)."""
        data = dict(self.__dict__)
        data["final"] = {f"R@{k}": v for k, v in self.final.items()}
        data["best"] = {f"R@{k}": v for k, v in self.best.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["final"] = recall_keys(values["final"])
        values["best"] = recall_keys(values["best"])
        return cls(**values)


def recall_keys(values: Mapping[str, float]) -> dict[int, float]:
    """``{"R@10": v}`` → ``{10: v}``."""
    return {int(key.split("@", 1)[1]): float(value) for key, value in values.items()}


def evaluated(history: History) -> list[Mapping[str, Any]]:
    """The history records that carry validation metrics, in epoch order."""
    return [record for record in history if _number(record.get("val/headline")) is not None]


def first_epoch_reaching(history: History, threshold: float, metric: str = THRESHOLD_METRIC) -> int | None:
    """The first evaluated epoch whose ``metric`` is at least ``threshold``; ``None`` if none is."""
    for record in evaluated(history):
        value = _number(record.get(metric))
        if value is not None and value >= threshold:
            return int(record["epoch"])
    return None


def mean_per_step(history: History, key: str) -> float | None:
    """The steps-weighted mean of an epoch-mean statistic such as ``time/mean_sample_s``."""
    total, steps = 0.0, 0
    for record in history:
        value, count = _number(record.get(key)), int(record.get("steps") or 0)
        if value is not None and count > 0:
            total += value * count
            steps += count
    return total / steps if steps else None


def total_seconds(history: History) -> float:
    """Training and evaluation time: every epoch's ``time/epoch_s`` plus epoch 0's evaluation."""
    total = 0.0
    for record in history:
        if int(record.get("epoch", 0)) == 0:
            total += _number(record.get("time/eval_s")) or 0.0
        else:
            total += _number(record.get("time/epoch_s")) or 0.0
    return total


def recalls(record: Mapping[str, Any], ks: Sequence[int] = KS) -> dict[int, float]:
    """``{K: val/mean/R@K}`` of one evaluated record."""
    return {k: float(record[f"val/mean/R@{k}"]) for k in ks}


def best_record(history: History) -> Mapping[str, Any]:
    """The evaluated record with the highest headline (the first of equals, as the trainer keeps it)."""
    records = evaluated(history)
    if not records:
        raise ValueError("the history holds no evaluated epoch")
    best = records[0]
    for record in records[1:]:
        if float(record["val/headline"]) > float(best["val/headline"]):
            best = record
    return best


def series(history: History) -> dict[str, list[float | None]]:
    """Per-epoch values for the plots: epochs, mean Recall@10, headline, loss and active share."""
    keys = {"recall10": THRESHOLD_METRIC, "headline": "val/headline", "loss": "train/loss",
            "active_fraction": "train/active_fraction", "sample_s": "time/mean_sample_s"}
    out: dict[str, list[float | None]] = {"epoch": [float(r["epoch"]) for r in history]}
    for name, key in keys.items():
        out[name] = [_number(r.get(key)) for r in history]
    return out


def summarise(name: str, history: History, threshold: float, *, steps: int | None = None,
              description: str = "") -> RunSummary:
    """The :class:`RunSummary` of one run's history, with the epoch at which it reached ``threshold``."""
    records = evaluated(history)
    if not records:
        raise ValueError(f"run {name!r} has no evaluated epoch")
    last, best = records[-1], best_record(history)
    trained = [r for r in history if int(r.get("epoch", 0)) > 0]
    return RunSummary(
        name=name,
        epochs=max((int(r["epoch"]) for r in history), default=0),
        steps=steps if steps is not None else max((int(r.get("step") or 0) for r in history), default=0),
        final=recalls(last), final_headline=float(last["val/headline"]),
        best=recalls(best), best_headline=float(best["val/headline"]), best_epoch=int(best["epoch"]),
        threshold_epoch=first_epoch_reaching(history, threshold),
        sample_s_per_step=mean_per_step(trained, "time/mean_sample_s"),
        step_s=mean_per_step(trained, "time/mean_step_s"),
        total_s=total_seconds(history),
        description=description,
        series=series(history),
    )


def default_threshold(histories: Mapping[str, History], baseline: float,
                      fraction: float = DEFAULT_THRESHOLD_FRACTION) -> float:
    """``fraction`` of the way from ``baseline`` to the best final mean Recall@10 over the runs.

    ``baseline`` is the untrained ``sum`` combiner's mean Recall@10. Measuring the way from there
    rather than from zero keeps the threshold meaningful on easy data, where a plain 90% of the best
    Recall@10 can lie barely above what no training at all achieves. When no run ends above the
    baseline, the threshold is the best final Recall@10 itself.
    """
    finals = [float(evaluated(h)[-1][THRESHOLD_METRIC]) for h in histories.values() if evaluated(h)]
    if not finals:
        raise ValueError("no run has an evaluated epoch")
    best = max(finals)
    return baseline + fraction * (best - baseline) if best > baseline else best


def verdict(run: RunSummary, reference: RunSummary, threshold: float, tie: float = TIE_POINTS) -> str:
    """A factual sentence: did ``run`` learn faster and better than ``reference`` (usually ``random``)?

    *Faster* compares the epochs at which each first reached the Recall@10 threshold; *better*
    compares the best headline (mean of Recall@10 and Recall@50), a difference of at most ``tie``
    points counting as "as well". The numbers behind both judgements are part of the sentence, and the
    final Recall@10 follows, since a run can peak early and then fall back.
    """
    pace = learning_pace(run.threshold_epoch, reference.threshold_epoch)
    diff = run.best_headline - reference.best_headline
    quality = "as well" if abs(diff) <= tie else ("better" if diff > 0 else "worse")
    reached = (f"first epoch with Recall@10 ≥ {threshold:.1f}: {_epoch(run.threshold_epoch)} vs "
               f"{_epoch(reference.threshold_epoch)}")
    headline = f"best headline {run.best_headline:.1f} vs {reference.best_headline:.1f}" + (
        ", on par" if abs(diff) <= tie else f", {diff:+.1f}")
    final_diff = run.final[10] - reference.final[10]
    final = f"final Recall@10 {run.final[10]:.1f} vs {reference.final[10]:.1f}" + (
        "" if abs(final_diff) <= tie else f" ({final_diff:+.1f})")
    if pace == "neither":
        return (f"**{run.name}**, like {reference.name}, never reached Recall@10 ≥ {threshold:.1f}; it learned "
                f"{quality} ({headline}); {final}.")
    pace_words = {"faster": f"faster than {reference.name}", "slower": f"slower than {reference.name}",
                  "same": f"at the same pace as {reference.name}"}[pace]
    return f"**{run.name}** learned {pace_words} ({reached}) and {quality} ({headline}); {final}."


def learning_pace(epoch: int | None, reference_epoch: int | None) -> str:
    """``faster``, ``slower``, ``same`` or ``neither``, from the epochs at which two runs reached the threshold."""
    if epoch is None and reference_epoch is None:
        return "neither"
    if epoch is None:
        return "slower"
    if reference_epoch is None or epoch < reference_epoch:
        return "faster"
    return "slower" if epoch > reference_epoch else "same"


def _epoch(epoch: int | None) -> str:
    return "never" if epoch is None else str(epoch)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, empty, NaN)."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
