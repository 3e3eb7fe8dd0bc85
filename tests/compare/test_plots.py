"""The charts are drawn from a hand-made comparison: valid PNGs, one loss panel per loss family, the ledger."""

from __future__ import annotations

from PIL import Image

from cirlab.compare.plots import (
    DPI,
    plot_ledger,
    plot_recall,
    plot_training,
    recall_figure,
    run_styles,
    training_figure,
)
from tests.compare.results import made_up_result


def test_recall_chart_is_a_png_of_the_set_size(tmp_path):
    path = plot_recall(made_up_result(tmp_path), tmp_path / "recall.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert (image.width, image.height) == (round(7.5 * DPI), round(4.6 * DPI))
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temporary file left


def test_training_chart_gets_one_loss_panel_per_loss(tmp_path):
    triplet_only = plot_training(made_up_result(tmp_path), tmp_path / "a.png")
    with_reference = plot_training(made_up_result(tmp_path, contrastive=True), tmp_path / "b.png")
    with Image.open(triplet_only) as two_panels, Image.open(with_reference) as three_panels:
        assert two_panels.width == round(2 * 4.4 * DPI)
        assert three_panels.width == round(3 * 4.4 * DPI)


def test_styles_are_stable_per_run_order():
    first = run_styles(["random", "hard", "category"])
    assert first == run_styles(["random", "hard", "category"])
    assert run_styles(["random", "hard"]) == {name: first[name] for name in ("random", "hard")}
    many = run_styles([f"run{i}" for i in range(40)])
    assert len({(str(s["color"]), s["marker"], s["linestyle"]) for s in many.values()}) == 40


def _run_lines(figure):
    """``{run: {(color, linestyle, marker), ...}}`` over every panel of ``figure`` (baseline lines left out)."""
    lines = {}
    for ax in figure.get_axes():
        for line in ax.get_lines():
            if not line.get_label().startswith(("_", "chance", "threshold")):
                lines.setdefault(line.get_label().split(" (")[0], set()).add(
                    (tuple(line.get_color()), line.get_linestyle(), line.get_marker()))
    return lines


def test_each_run_has_its_own_colour_marker_and_line_style_in_every_chart(tmp_path):
    """Runs whose curves coincide stay distinguishable: every pair differs in colour, line style and marker."""
    result = made_up_result(tmp_path, contrastive=True)
    recall, training = _run_lines(recall_figure(result)), _run_lines(training_figure(result))
    assert set(recall) == set(training) == set(result.strategies)
    for name in result.strategies:
        assert len(recall[name] | training[name]) == 1  # one style per run, the same in both charts
    styles = [next(iter(recall[name])) for name in result.strategies]
    for i, one in enumerate(styles):
        for other in styles[i + 1:]:
            assert all(a != b for a, b in zip(one, other)), (one, other)


def test_ledger_chart_has_a_panel_per_band_and_is_left_out_without_mining(tmp_path):
    result = made_up_result(tmp_path, contrastive=True)
    path = plot_ledger(result, tmp_path / "ledger.png")
    with Image.open(path) as image:
        assert image.width == round(4 * 3.9 * DPI)  # harder, semi-hard, easier, true false negatives
    for strategy in result.strategies.values():
        strategy.series = {k: v for k, v in strategy.series.items() if not k.startswith("ledger/")}
    assert plot_ledger(result, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
