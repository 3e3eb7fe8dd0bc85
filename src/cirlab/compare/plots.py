"""The comparison's charts (matplotlib, Agg backend, PNG): Recall@10 per epoch, loss and active share per epoch.

Each run keeps one colour, marker and line style in every chart, so that runs whose curves coincide
(two strategies with the same loss per epoch) stay visible on top of each other. Epoch 0 is the
untrained combiner; the untrained ``sum`` combiner (zero-shot feature arithmetic) and the
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
    """Mean validation Recall@10 per epoch of every run on one chart, with the baseline and threshold lines."""
    return _save(recall_figure(result), path)


def recall_figure(result: ComparisonResult) -> Any:
    """The figure of :func:`plot_recall`."""
    figure, axes = _figure(1, size=(7.5, 4.6))
    ax = axes[0]
    styles = run_styles(list(result.runs))
    for name, run in result.runs.items():
        epochs, values = _points(run.series["epoch"], run.series["recall10"])
        ax.plot(epochs, values, markersize=4, linewidth=1.8, label=name, **styles[name])
    ax.axhline(result.baseline.recall[10], color="0.35", linestyle="--", linewidth=1.2,
               label=f"untrained sum ({result.baseline.recall[10]:.1f})")
    ax.axhline(result.threshold, color="0.6", linestyle=":", linewidth=1.2,
               label=f"threshold ({result.threshold:.1f})")
    ax.set_xlabel("epoch (0 = untrained combiner)")
    ax.set_ylabel("Recall@10, mean over categories (%)")
    ax.set_title("Validation Recall@10 per epoch")
    last = max((max(run.series["epoch"], default=0) for run in result.runs.values()), default=0)
    ax.set_xlim(-0.5, last + 0.5)
    _integer_epochs(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    return figure


def plot_training(result: ComparisonResult, path: str | Path) -> Path:
    """Training loss per epoch (one panel per loss, as their scales differ) and the share of active triplets."""
    return _save(training_figure(result), path)


def training_figure(result: ComparisonResult) -> Any:
    """The figure of :func:`plot_training`."""
    groups: dict[str, list[str]] = {}
    for name in result.runs:
        loss = result.setup.get("runs", {}).get(name, {}).get("loss", "loss")
        groups.setdefault(loss, []).append(name)
    panels = len(groups) + 1
    figure, axes = _figure(panels, size=(4.4 * panels, 3.9))
    styles = run_styles(list(result.runs))
    for ax, (loss, names) in zip(axes, groups.items()):
        for name in names:
            series = result.runs[name].series
            epochs, values = _points(series["epoch"], series["loss"])
            ax.plot(epochs, values, markersize=4, linewidth=1.6, label=name, **styles[name])
        ax.set_title(f"training loss ({loss})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean loss over the epoch")
        _integer_epochs(ax)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[-1]
    for name, run in result.runs.items():
        epochs, values = _points(run.series["epoch"], run.series["active_fraction"])
        ax.plot(epochs, [100 * v for v in values], markersize=4, linewidth=1.6, label=name, **styles[name])
    ax.set_title("active (query, negative) pairs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of active pairs (%)")
    ax.set_ylim(bottom=0)
    _integer_epochs(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def _figure(panels: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A figure of ``panels`` side by side on an Agg canvas (no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    return figure, list(axes)


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
