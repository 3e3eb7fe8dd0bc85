"""``report.md`` from a hand-made comparison: tables, intervals, verdicts, ledger, figures and the command line."""

from __future__ import annotations

from pathlib import Path

from cirlab.compare.report import render_report
from tests.compare.results import made_up_result


def test_the_report_leads_with_what_is_reported_and_the_excluded_queries(tmp_path):
    text = render_report(made_up_result(tmp_path))
    assert "**Reported: `test` split, best validation epoch of each run.** Each run's checkpoint was selected on " \
           "validation and is reported on test" in text
    queries = text.split("## Queries", 1)[1].split("##", 1)[0]
    assert "- `val`: dress 40 ranked against 100 images (2 left out (missing image); 1 with the target outside " \
           "the gallery (kept); 1 images missing from the cache); shirt 30 ranked against 80 images." in queries
    assert text.index("## Queries") < text.index("## Results")


def test_results_table_holds_means_sds_and_paired_differences(tmp_path):
    result = made_up_result(tmp_path)
    text = render_report(result)
    hard = result.strategies["hard"].versus_baseline.estimates
    row = next(line for line in text.splitlines() if line.startswith("| hard |"))
    assert row.startswith("| hard | 78.1 ± 0.9 | 78.1 ± 0.9 | 78.1 ± 0.9 | 78.1 ± 0.9 | 78.1 ± 0.9 | +50.0 [")
    assert f"[{hard['R@10'].low:+.2f}, {hard['R@10'].high:+.2f}]" in row and row.endswith("| 100% | 4.00 |")
    assert "| *untrained sum* | 5.0 | 20.0 | 30.0 | 60.0 | 45.0 |" in text
    assert "| *chance* | " in text and "| random | 28.1 ± 0.9 |" in text
    assert "- **hard**: hard > random by +50.0 R@10" in text
    assert "- **category**: no difference between category and random detected at this budget" in text
    assert "| loss | triplet (margin 0.1) |" in text and "| seeds | 0, 1 |" in text


def test_speed_ledger_and_seed_system_sections(tmp_path):
    text = render_report(made_up_result(tmp_path, contrastive=True, seed_system=True))
    assert "One threshold for the whole report: mean validation Recall@10 ≥ 46.5 (random's mean final R@10 over " \
           "2 seeds)." in text
    assert "| random | never, 3 | 3.0 | 1.00× |" in text and "| hard | 2, 2 | 2.0 | 0.67× |" in text
    assert "| contrastive-in-batch | never, never | never | – | – |" in text
    ledger = text.split("## The negative ledger", 1)[1].split("## Curves", 1)[0]
    # 160, 480 and 960 of 1600 served negatives; 8 true false negatives of 1600 checked; 4 blocked copies
    assert "| hard | 10.0% | 30.0% | 60.0% | 1.0% | 50.0% | 0.500% | 0.250% | 0.125% |" in ledger
    assert "contrastive-in-batch" not in ledger.split("\n\n", 2)[1]  # mined nothing: no ledger row
    assert "## cirlab's best strategy against the seed's system" in text
    assert "**hard** against the seed's system" in text and "at epoch 1.0 on average (per seed: 1, 1)" in text
    assert text.index("against the seed's system") < text.index("## Queries")  # the report leads with it


def test_figures_notes_and_command(tmp_path):
    result = made_up_result(tmp_path, contrastive=True, seed_system=True)
    result.files["recall_plot"] = tmp_path / "recall_at_10.png"
    result.files["queries:hard"] = tmp_path / "queries-hard.png"
    result.notes.append("query figures left out: no images")
    text = render_report(result)
    assert "![Validation Recall@10 per epoch](recall_at_10.png)" in text
    assert "*(Training loss and share of active pairs per epoch: not drawn)*" in text
    assert "### hard" in text and "![Top 10 results of hard](queries-hard.png)" in text
    assert "- query figures left out: no images" in text
    command = text.split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert command == ("cirlab compare --config synthetic --features /data/features --strategies random,hard,category "
                       "--epochs 3 --seeds 2 --selection val --baseline random --include-contrastive --include-seed "
                       f"--set batch_size=64 --set loss_options.margin=0.1 --out {Path(tmp_path)}")


def test_active_share_is_explained_per_sampler(tmp_path):
    """Full active share is by construction for semi-hard, by design for hard, a warning only for the others."""
    result = made_up_result(tmp_path, contrastive=True)
    result.strategies["category"].negatives = "semi-hard"
    text = render_report(result)
    assert "- **category** (semi-hard negatives): 100% by construction: semi-hard negatives are drawn from inside " \
           "the margin" in text
    assert "- **hard** (hard negatives): close to 100% by design" in text
    for name, sampler in (("random", "random"), ("contrastive-in-batch", "in-batch")):
        assert f"- **{name}** ({sampler} negatives): expected to fall as training separates targets from " \
               f"negatives; a share that stays near 100% means the combiner is not separating them." in text
    assert "the triplet loss stuck at its margin (0.1)" in text
    assert "means the embedding has collapsed" not in text  # the old claim, false for semi-hard
