"""The comparison result's terminal table."""

from __future__ import annotations

from tests.compare.results import made_up_result


def test_table_has_a_row_per_strategy_the_baselines_and_the_verdicts(tmp_path):
    result = made_up_result(tmp_path)
    lines = result.format_table().splitlines()
    assert lines[0] == "test split, val checkpoint, mean ± sd over 2 seeds"
    rows = {line.split()[0]: line for line in lines[3:] if not line.startswith("-")}
    assert {"random", "hard", "category", "untrained", "chance"} <= set(rows)
    # random: 27.5 and 28.75 at every K -> 28.1 ± 0.9; mining 4 ms per step
    assert rows["random"].split() == ["random", *["28.1", "±", "0.9"] * 5, "4.0"]
    assert rows["untrained"].split()[2:] == ["5.0", "20.0", "30.0", "60.0", "45.0"]
    assert any(line.startswith("- hard > random by +50.0 R@10") for line in lines)
    assert result.best_strategy().name == "hard"
