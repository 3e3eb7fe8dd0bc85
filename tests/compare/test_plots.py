"""The charts are drawn from a hand-made comparison: valid PNGs, one loss panel per loss family."""

from __future__ import annotations

from PIL import Image

from cirlab.compare.plots import DPI, plot_recall, plot_training, run_colours
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


def test_colours_are_stable_per_run_order():
    first = run_colours(["random", "hard", "category"])
    assert first == run_colours(["random", "hard", "category"])
    assert len(set(first.values())) == 3
