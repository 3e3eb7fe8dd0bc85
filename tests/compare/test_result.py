"""The comparison result: its terminal table and its JSON round trip."""

from __future__ import annotations

import json

from cirlab.compare.result import ComparisonResult
from tests.compare.results import made_up_result


def test_table_has_a_row_per_run_and_the_baseline(tmp_path):
    table = made_up_result(tmp_path).format_table().splitlines()
    rows = {line.split()[0]: line for line in table[2:-1]}
    assert set(rows) == {"random", "hard", "category", "untrained"}
    # hard: final recalls 10.4 26.0 52.0 82.0, best headline 67.0 at epoch 3, threshold at epoch 1, 4.0 ms mining
    assert rows["hard"].split()[1:] == ["10.4", "26.0", "52.0", "82.0", "67.0", "3", "epoch", "1", "4.0", "5"]
    assert rows["category"].split()[7:9] == ["never", "4.0"]
    assert rows["untrained"].split()[2:] == ["5.0", "20.0", "30.0", "60.0", "45.0"]
    assert "R@10≥45.0" in table[0]


def test_json_form_reads_back_unchanged(tmp_path):
    result = made_up_result(tmp_path, contrastive=True)
    result.files["report"] = tmp_path / "report.md"
    result.notes.append("a note")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["threshold"] == {"metric": "val/mean/R@10", "value": 45.0, "rule": "given"}
    assert data["runs"]["hard"]["best"]["R@10"] == 52.0 and data["baseline"]["recall"]["R@50"] == 60.0
    loaded = ComparisonResult.from_dict(data, tmp_path)
    assert loaded == result
    assert loaded.best_run().name == "hard" and loaded.report == tmp_path / "report.md"
