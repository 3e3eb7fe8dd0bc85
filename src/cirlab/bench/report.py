"""What a benchmark run produces: figures, per-benchmark results, the printed table and the JSON file.

Every figure says what kind of number it is, because only some of them travel between machines:

- ``ratio``: divided by a baseline measured in the same run and the same rounds (a matrix product, the
  random sampler, a bare top-k...). Stable on a loaded machine and comparable across machines of a kind.
- ``absolute``: seconds, rates and bytes of *this* machine at the time of the run; compare them only
  with figures from the same machine under the same load.
- ``exact``: facts that do not depend on the machine: FLOP counts, agreement counts, recall of an
  approximate index.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cirlab.bench.timing import Stat
from cirlab.io import atomic_write_json

KINDS: tuple[str, ...] = ("ratio", "absolute", "exact")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Figure:
    """One reported number."""

    name: str  # short name inside its benchmark, e.g. "fp32_share_of_peak" or "10k.hard_step_ratio"
    value: float
    unit: str  # "x", "triplets/s", "ms", "GFLOP/s", "MiB", "fraction", "count"...
    kind: str  # one of KINDS
    description: str  # what was measured, in a few words
    baseline: str | None = None  # for ratios: what the value is divided by
    low: float | None = None  # smallest round (spread); None for single-shot values
    high: float | None = None  # largest round

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"figure {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "ratio" and not self.baseline:
            raise ValueError(f"figure {self.name!r}: a ratio must name its baseline")

    @classmethod
    def from_stat(cls, name: str, stat: Stat, unit: str, kind: str, description: str,
                  baseline: str | None = None) -> Figure:
        """A figure whose value and spread come from a :class:`Stat`."""
        return cls(name, stat.value, unit, kind, description, baseline, stat.low, stat.high)


@dataclass
class BenchResult:
    """The figures of one benchmark, the sizes it used and what a reader should know about them."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, figure: Figure) -> Figure:
        """Append ``figure`` (names must be unique within the benchmark)."""
        if any(f.name == figure.name for f in self.figures):
            raise ValueError(f"benchmark {self.name!r} already has a figure {figure.name!r}")
        self.figures.append(figure)
        return figure

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; figures keyed by name."""
        return {"name": self.name, "title": self.title, "seconds": round(self.seconds, 3), "settings": self.settings,
                "notes": list(self.notes),
                "figures": {f.name: {k: v for k, v in asdict(f).items() if k != "name"} for f in self.figures}}


@dataclass
class BenchReport:
    """A whole ``cirlab bench`` run."""

    quick: bool
    device: str
    machine: dict[str, Any]
    results: list[BenchResult] = field(default_factory=list)
    seconds: float = 0.0
    command: str = ""

    def figures(self) -> dict[str, Figure]:
        """Every figure by its full name ``<benchmark>.<figure>``."""
        return {f"{r.name}.{f.name}": f for r in self.results for f in r.figures}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the whole run."""
        return {"format_version": FORMAT_VERSION, "command": self.command, "quick": self.quick,
                "device": self.device, "seconds": round(self.seconds, 3), "machine": self.machine,
                "kinds": {"ratio": "against a baseline measured in the same run (stable)",
                          "absolute": "this machine only, at the time of the run",
                          "exact": "machine-independent (counts, agreement, recall)"},
                "benchmarks": [r.to_dict() for r in self.results]}

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path`` atomically."""
        atomic_write_json(path, self.to_dict())

    def format_table(self) -> str:
        """The human-readable table: one block per benchmark, ratios first."""
        m = self.machine
        lines = [
            f"cirlab bench{' --quick' if self.quick else ''}: device {self.device}, {m.get('cpus')} CPUs "
            f"({m.get('cpu_model', 'unknown CPU')}), torch {m.get('torch')} with {m.get('torch_threads')} threads, "
            f"load average {m.get('load_average_start')} at start, {m.get('load_average_end')} at end; "
            f"{self.seconds:.0f} s",
            "ratio: against a baseline measured in the same rounds (stable); absolute: this machine only; "
            "exact: machine-independent. Spread = smallest and largest round.",
        ]
        for result in self.results:
            lines.append("")
            lines.append(f"[{result.name}] {result.title} ({result.seconds:.0f} s)")
            if result.settings:
                lines.append("  settings: " + ", ".join(f"{k}={_short(v)}" for k, v in result.settings.items()))
            rows = [("figure", "value", "unit", "spread", "kind", "baseline")]
            order = {kind: i for i, kind in enumerate(KINDS)}
            for f in sorted(result.figures, key=lambda f: order[f.kind]):
                spread = "" if f.low is None else f"{_number(f.low)}-{_number(f.high)}"
                rows.append((f.name, _number(f.value), f.unit, spread, f.kind, f.baseline or ""))
            widths = [max(len(row[i]) for row in rows) for i in range(5)]
            for row in rows:
                cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                         row[3].ljust(widths[3]), row[4].ljust(widths[4]), row[5]]
                lines.append("  " + "  ".join(cells).rstrip())
            lines.extend(f"  note: {note}" for note in result.notes)
        return "\n".join(lines)


def _number(value: float) -> str:
    """A compact rendering with about three significant digits."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude == 0 or 0.01 <= magnitude < 1e6:
        decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
        return f"{value:.{decimals}f}"
    return f"{value:.2e}"


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "/".join(str(v) for v in value)
    return str(value)
