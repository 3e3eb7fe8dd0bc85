import json

from cirlab.cli import main
from cirlab.synth import META_FILE


def test_cli_writes_a_data_set_that_data_check_accepts(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--seed", "2", "--images-per-category", "30",
                 "--size", "40", "--preview", str(tmp_path / "preview.png")]) == 0
    printed = capsys.readouterr().out
    assert "dress.train" in printed and "preview:" in printed
    meta = json.loads((out / META_FILE).read_text())
    assert (meta["config"]["seed"], meta["config"]["images_per_category"], meta["config"]["size"]) == (2, 30, 40)
    assert (tmp_path / "preview.png").exists()
    assert main(["data", "check", str(out)]) == 0
    assert main(["synth", "--out", str(out), "--preset", "tiny", "--seed", "2", "--images-per-category", "30",
                 "--size", "40"]) == 0
    assert "nothing written" in capsys.readouterr().out


def test_cli_reports_refusals_on_one_line(tmp_path, capsys):
    (tmp_path / "other.txt").write_text("x")
    assert main(["synth", "--out", str(tmp_path), "--preset", "tiny"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cirlab: error:") and "\n" not in error and str(tmp_path) in error
    assert main(["synth", "--out", str(tmp_path / "new"), "--preset", "tiny", "--size", "8"]) == 2
    assert "image size" in capsys.readouterr().err
