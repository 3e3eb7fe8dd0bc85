"""``cirlab eval`` and ``cirlab index`` (commands that only report): results on stdout, nothing on stderr."""

from __future__ import annotations

from cirlab.cli import main
from tests.training.fixtures import make_learnable_cache


def test_reports_go_to_stdout_only(tmp_path, capsys):
    features = make_learnable_cache(tmp_path / "features", images={"train": 8, "val": 8})
    assert main(["eval", "--features", str(features), "--combiner", "sum", "--categories", "dress,shirt",
                 "--out", str(tmp_path / "result.json")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "dress" in captured.out
    assert captured.out.endswith(f"wrote {tmp_path / 'result.json'}\n")
    assert main(["index", "--features", str(features), "--out", str(tmp_path / "index"), "--category", "dress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out
