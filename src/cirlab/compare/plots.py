"""The comparison's charts (matplotlib, Agg backend, PNG): Recall@10 per epoch, loss and active share per epoch,
and the negative ledger.

Each strategy is drawn as its mean over seeds, with the range of its seeds shaded where a chart has one
line per strategy, and keeps one colour, marker and line style in every chart, so that strategies whose
curves coincide stay visible on top of each other. Epoch 0 is the untrained combiner; chance level and the
learning-speed threshold are drawn as horizontal lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cirlab.compare.result import ComparisonResult
from cirlab.io import atomic_path

DPI = 110
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")
LINE_STYLES: tuple[str, ...] = ("-", "--", "-.", ":")


def run_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A distinct, stable ``color``, ``marker`` and ``linestyle`` per run, in run order.

    Colours follow matplotlib's tab10 cycle; markers and line styles cycle with other periods, so the
    first 40 runs all differ in their (colour, marker, line style) triple, and each pair of the first
    four runs differs in all three.
    """
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {name: {"color": palette(i % 10), "marker": MARKERS[i % len(MARKERS)],
                   "linestyle": LINE_STYLES[i % len(LINE_STYLES)]} for i, name in enumerate(names)}


def plot_recall(result: ComparisonResult, path: str | Path) -> Path:
    """Mean validation Recall@10 per epoch of every strategy (seed range shaded), with chance and the threshold."""
    return _save(recall_figure(result), path)


def recall_figure(result: ComparisonResult) -> Any:
    """The figure of :func:`plot_recall`."""
    figure, axes = _figure(1, size=(7.5, 4.6))
    ax = axes[0]
    styles = run_styles(list(result.strategies))
    for name, strategy in result.strategies.items():
        epochs, values = _points(strategy.series["epoch"], strategy.series["recall10"])
        ax.plot(epochs, values, markersize=4, linewidth=1.8, label=f"{name} ({len(strategy.seeds)} seeds)",
                **styles[name])
        low, high = _seed_range([run.series["recall10"] for run in strategy.runs])
        band = [(e, lo, hi) for e, lo, hi in zip(strategy.series["epoch"], low, high) if lo is not None]
        if len(strategy.runs) > 1 and band:
            ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                            color=styles[name]["color"], alpha=0.12, linewidth=0)
    ax.axhline(result.speed.threshold, color="0.45", linestyle=":", linewidth=1.2,
               label=f"threshold ({result.speed.threshold:.1f})")
    ax.axhline(result.chance["R@10"], color="0.7", linestyle="--", linewidth=1.0,
               label=f"chance ({result.chance['R@10']:.1f})")
    ax.set_xlabel("epoch (0 = untrained combiner)")
    ax.set_ylabel("Recall@10, mean over categories (%)")
    ax.set_title("Validation Recall@10 per epoch (mean over seeds; shaded: their range)")
    last = max((max(s.series["epoch"], default=0) for s in result.strategies.values()), default=0)
    ax.set_xlim(-0.5, last + 0.5)
    _integer_epochs(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return figure


def plot_training(result: ComparisonResult, path: str | Path) -> Path:
    """Training loss per epoch (one panel per loss, as their scales differ) and the share of active pairs."""
    return _save(training_figure(result), path)


def training_figure(result: ComparisonResult) -> Any:
    """The figure of :func:`plot_training`."""
    groups: dict[str, list[str]] = {}
    for name, strategy in result.strategies.items():
        groups.setdefault(strategy.loss, []).append(name)
    panels = len(groups) + 1
    figure, axes = _figure(panels, size=(4.4 * panels, 3.9))
    styles = run_styles(list(result.strategies))
    for ax, (loss, names) in zip(axes, groups.items()):
        for name in names:
            series = result.strategies[name].series
            epochs, values = _points(series["epoch"], series["loss"])
            ax.plot(epochs, values, markersize=4, linewidth=1.6, label=name, **styles[name])
        ax.set_title(f"training loss ({loss})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean loss over the epoch")
        _integer_epochs(ax)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[-1]
    for name, strategy in result.strategies.items():
        epochs, values = _points(strategy.series["epoch"], strategy.series["active_fraction"])
        ax.plot(epochs, [100 * v for v in values], markersize=4, linewidth=1.6, label=name, **styles[name])
    ax.set_title("active (query, negative) pairs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of active pairs (%)")
    ax.set_ylim(bottom=0)
    _integer_epochs(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return figure


#: The ledger's panels: series key, title.
LEDGER_PANELS: tuple[tuple[str, str], ...] = (
    ("ledger/harder", "harder than the positive"),
    ("ledger/semi_hard", "inside the semi-hard window"),
    ("ledger/easier", "easier than the window"),
    ("ledger/true_false_negatives", "true false negatives"),
)


def plot_ledger(result: ComparisonResult, path: str | Path) -> Path | None:
    """Per epoch, the share of each strategy's served negatives in each band of the ledger (and the true false
    negatives where the data set knows them); ``None`` when no strategy mined negatives."""
    figure = ledger_figure(result)
    return None if figure is None else _save(figure, path)


def ledger_figure(result: ComparisonResult) -> Any | None:
    """The figure of :func:`plot_ledger`."""
    mined = {name: s for name, s in result.strategies.items() if any(k.startswith("ledger/") for k in s.series)}
    panels = [(key, title) for key, title in LEDGER_PANELS
              if any(any(v is not None for v in s.series.get(key, [])) for s in mined.values())]
    if not panels:
        return None
    figure, axes = _figure(len(panels), size=(3.9 * len(panels), 3.7))
    styles = run_styles(list(result.strategies))
    for ax, (key, title) in zip(axes, panels):
        for name, strategy in mined.items():
            epochs, values = _points(strategy.series["epoch"], strategy.series.get(key, []))
            ax.plot(epochs, [100 * v for v in values], markersize=3, linewidth=1.5, label=name, **styles[name])
        ax.set_title(f"served negatives {title}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("share of served negatives (%)")
        ax.set_ylim(bottom=0)
        _integer_epochs(ax)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    return figure


def _figure(panels: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A figure of ``panels`` side by side on an Agg canvas (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    return figure, list(axes)


def _seed_range(per_seed: Sequence[Sequence[float | None]]) -> tuple[list[float | None], list[float | None]]:
    """Per epoch, the smallest and largest value over seeds (``None`` where a seed has none)."""
    low, high = [], []
    for values in zip(*per_seed):
        known = [v for v in values if v is not None]
        complete = len(known) == len(values)
        low.append(min(known) if complete else None)
        high.append(max(known) if complete else None)
    return low, high


def _points(epochs: Sequence[float], values: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """The (epoch, value) pairs where a value was recorded."""
    pairs = [(e, v) for e, v in zip(epochs, values) if v is not None]
    return [e for e, _ in pairs], [v for _, v in pairs]


def _integer_epochs(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(figure: Any, path: str | Path) -> Path:
    """Render ``figure`` to a PNG at ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return path
