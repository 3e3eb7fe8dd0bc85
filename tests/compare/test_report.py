"""``report.md`` from a hand-made comparison: tables, threshold, verdicts, figures and the command line."""

from __future__ import annotations

from pathlib import Path

from cirlab.compare.report import render_report
from tests.compare.results import made_up_result


def test_tables_hold_the_summaries_numbers(tmp_path):
    result = made_up_result(tmp_path)
    text = render_report(result)
    # hard: final R@10 52 (R@1 10.4, R@5 26, R@50 82), headline 67 at epoch 3
    assert "| hard | 10.4 | 26.0 | 52.0 | 82.0 | 67.0 | 3 | 10.4 | 26.0 | 52.0 | 82.0 | **67.0** |" in text
    assert "| *untrained sum* | 5.0 | 20.0 | 30.0 | 60.0 | 45.0 | – | 5.0 | 20.0 | 30.0 | 60.0 | 45.0 |" in text
    # random first reaches 45 at epoch 3, hard at 1, category never; 4 ms mining, 20 ms per step, 3 * 1.5 + 0.2 s
    assert "| random | 3 | 4.00 | 20.0 | 15 | 5 | triplet loss, random negatives (k=16) |" in text
    assert "| hard | 1 |" in text and "| category | never |" in text
    assert "**Best run: hard**, headline 67.0 at epoch 3 (untrained `sum` combiner: 45.0)." in text
    assert "Threshold: mean Recall@10 ≥ 45.0 (given)." in text
    assert "| loss | triplet (margin 0.1) |" in text and "| combiner | combiner |" in text
    assert "| sampler options | defaults |" in text


def test_verdicts_figures_and_command(tmp_path):
    result = made_up_result(tmp_path, contrastive=True)
    result.files["recall_plot"] = tmp_path / "recall_at_10.png"
    result.files["queries:hard"] = tmp_path / "queries-hard.png"
    result.notes.append("query figures left out: no images")
    text = render_report(result)
    assert "- **hard** learned faster than random (first epoch with Recall@10 ≥ 45.0: 1 vs 3) and better" in text
    assert "- **category** learned slower than random (first epoch with Recall@10 ≥ 45.0: never vs 3) and worse" in text
    assert "![Validation Recall@10 per epoch](recall_at_10.png)" in text
    assert "*(Training loss and share of active triplets per epoch: not drawn)*" in text
    assert "### hard" in text and "![Top 10 results of hard](queries-hard.png)" in text
    assert "- query figures left out: no images" in text
    assert "| contrastive-in-batch | never | – |" in text  # nothing mined: no mining time
    command = text.split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert command == ("cirlab compare --config synthetic --features /data/features --strategies random,hard,category "
                       f"--epochs 3 --include-contrastive --set batch_size=64 --set loss_options.margin=0.1 "
                       f"--out {Path(tmp_path)}")


def test_active_share_is_explained_per_sampler(tmp_path):
    """Full active share is by construction for semi-hard, by design for hard, a warning only for the others."""
    result = made_up_result(tmp_path, contrastive=True)
    result.setup["runs"]["category"]["negatives"] = "semi-hard"
    text = render_report(result)
    assert "- **category** (semi-hard negatives): 100% by construction: semi-hard negatives are drawn from inside " \
           "the margin" in text
    assert "- **hard** (hard negatives): close to 100% by design" in text
    for name, sampler in (("random", "random"), ("contrastive-in-batch", "in-batch")):
        assert f"- **{name}** ({sampler} negatives): expected to fall as training separates targets from " \
               f"negatives; a share that stays near 100% means the combiner is not separating them." in text
    assert "the triplet loss stuck at its margin (0.1)" in text
    assert "means the embedding has collapsed" not in text  # the old claim, false for semi-hard
