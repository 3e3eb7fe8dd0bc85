"""Timing on a noisy machine: interleaved rounds, per-round ratios, medians and spreads.

Every benchmark times the work it studies and its baseline *in the same round*, one after the other,
and repeats the round. A burst of load from another process then slows both members of a pair alike,
so the per-round ratio stays put even when the absolute times jump; the median over rounds, with the
smallest and largest round as its spread, is what the report shows. The first ``warmup`` rounds (lazy
initialisation, allocator growth, CPU frequency ramp) are run and thrown away.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Stat:
    """A measured quantity: its median over rounds and the smallest and largest round."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        """Median, minimum and maximum of ``values`` (at least one)."""
        values = [float(v) for v in values]
        if not values:
            raise ValueError("a statistic needs at least one value")
        return cls(statistics.median(values), min(values), max(values))

    def map(self, function: Callable[[float], float]) -> Stat:
        """The statistic of ``function(x)`` for a monotonic ``function`` (low and high swap if it decreases)."""
        a, b = function(self.low), function(self.high)
        return Stat(function(self.value), min(a, b), max(a, b))


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of one piece of work, one sample per measured round."""

    samples: tuple[float, ...]

    @property
    def stat(self) -> Stat:
        """Median and spread of the samples."""
        return Stat.of(self.samples)


def synchronize(device: torch.device) -> None:
    """Wait for queued accelerator work, so that a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_rounds(works: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int = 1,
                device: torch.device | None = None, calls: Mapping[str, int] | None = None) -> dict[str, Timing]:
    """Run every work once per round, in order, for ``warmup + repeats`` rounds; time the last ``repeats``.

    ``calls`` lets a short work run several times back to back within its turn (its sample is then the
    mean seconds per call), so that one scheduling hiccup of a loaded machine does not decide a round.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be at least 1 and warmup at least 0, got {repeats} and {warmup}")
    device = device or torch.device("cpu")
    calls = calls or {}
    samples: dict[str, list[float]] = {name: [] for name in works}
    for round_index in range(warmup + repeats):
        for name, work in works.items():
            times = calls.get(name, 1)
            synchronize(device)
            start = time.perf_counter()
            for _ in range(times):
                work()
            synchronize(device)
            if round_index >= warmup:
                samples[name].append((time.perf_counter() - start) / times)
    return {name: Timing(tuple(values)) for name, values in samples.items()}


class Laps:
    """The phases of one piece of work: each :meth:`lap` waits for the device and charges the time since the
    previous lap (or :meth:`begin`) to its phase; every ``begin`` starts a new round.

    Waiting between phases is what makes a split exact on an accelerator, and what makes it cost a little
    there; time the whole work on its own (:func:`time_rounds`) for its rate.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.rounds: list[dict[str, float]] = []
        self._last = 0.0

    def begin(self) -> None:
        """Start a round."""
        synchronize(self.device)
        self.rounds.append({})
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        """Charge the time since the previous lap to ``phase`` (added up when a phase recurs in a round)."""
        synchronize(self.device)
        now = time.perf_counter()
        self.rounds[-1][phase] = self.rounds[-1].get(phase, 0.0) + now - self._last
        self._last = now

    def shares(self, last: int | None = None) -> dict[str, Stat]:
        """Each phase's share of its round's total, over the ``last`` rounds (all by default), in phase order."""
        rounds = self.rounds[-last:] if last else self.rounds
        phases = list(dict.fromkeys(phase for laps in rounds for phase in laps))
        return {phase: Stat.of(laps.get(phase, 0.0) / sum(laps.values()) for laps in rounds) for phase in phases}


def round_ratio(numerator: Timing, denominator: Timing) -> Stat:
    """Median and spread of ``numerator / denominator`` taken round by round (paired samples)."""
    if len(numerator.samples) != len(denominator.samples):
        raise ValueError("round_ratio needs timings of the same rounds")
    return Stat.of(a / b for a, b in zip(numerator.samples, denominator.samples))


def latency_percentiles(seconds: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 of single-request latencies, in milliseconds."""
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))
