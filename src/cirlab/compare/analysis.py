"""One run's numbers, computed from its per-epoch history (``metrics.json``).

Everything here is plain arithmetic on the history records that :mod:`cirlab.engine.runlog`
describes, so it can be checked by hand:

- **final** Recall@K: the last evaluated epoch's ``val/mean/R@K``;
- **best** Recall@K: the values of the epoch with the highest headline (the checkpoint kept in ``best/``),
  not the maximum of each K taken separately;
- **sampling time per step**: the mean of the epochs' ``time/mean_sample_s`` weighted by their steps,
  i.e. the mean over every step of the run;
- **total time**: the sum of the epochs' ``time/epoch_s`` (training and evaluation) plus the evaluation
  before training (epoch 0's ``time/eval_s``);
- **the negative ledger**: per epoch, the shares of the served negatives in each band, from the sampler's
  ``sampler/ledger_*`` counters (:func:`cirlab.negatives.ledger.ledger_shares`).

Statistics over seeds and queries are :mod:`cirlab.compare.statistics`'.
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
    out.update(ledger_series(history))
    return out


def ledger_series(history: History) -> dict[str, list[float | None]]:
    """Per epoch, the ledger's shares of the served negatives (``ledger/harder``, ``ledger/semi_hard``,
    ``ledger/easier``, ``ledger/reference``, ``ledger/same_category``, ``ledger/true_false_negatives``, and the
    guard's ``ledger/guard_*`` rates); empty for a run that mined nothing (in-batch negatives)."""
    from cirlab.negatives.ledger import ledger_shares

    rows = [ledger_shares({key: value for key, value in record.items() if _number(value) is not None},
                          prefix="sampler/") for record in history]
    names = list(dict.fromkeys(name for row in rows for name in row))
    return {f"ledger/{name.removeprefix('ledger_')}": [_number(row.get(name)) for row in rows] for name in names}


def summarise(name: str, history: History, *, steps: int | None = None, description: str = "") -> RunSummary:
    """The :class:`RunSummary` of one run's history."""
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
        sample_s_per_step=mean_per_step(trained, "time/mean_sample_s"),
        step_s=mean_per_step(trained, "time/mean_step_s"),
        total_s=total_seconds(history),
        description=description,
        series=series(history),
    )


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, empty, NaN)."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
