"""``cirlab compare``: the table and verdicts on stdout, one status line per run on stderr."""

from __future__ import annotations

from cirlab.cli import main
from tests.training.fixtures import make_learnable_cache


def test_table_on_stdout_and_runs_on_stderr(tmp_path, capsys):
    features = make_learnable_cache(tmp_path / "features", images={"train": 20, "val": 12})
    out = tmp_path / "cmp"
    sets = ["--set", "batch_size=16", "--set", "num_negatives=2", "--set", "tensorboard=false",
            "--set", "combiner_options={hidden_dim: 16, projection_dim: 16}"]
    assert main(["compare", "--features", str(features), "--strategies", "random,hard", "--epochs", "1",
                 "--seeds", "1", "--draws", "200", "--queries", "0", "--out", str(out), *sets]) == 0
    captured = capsys.readouterr()
    assert "untrained sum" in captured.out and captured.out.endswith(f"report: {out / 'report.md'}\n")
    assert "[1/2] random/seed-0: training" in captured.err and "[2/2] hard/seed-0: training" in captured.err
    assert "training" not in captured.out
