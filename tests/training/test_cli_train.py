"""``cirlab train``: YAML, flags and --set in that order of precedence; resume from the run folder; errors."""

from __future__ import annotations

import json

import pytest

from cirlab import cli
from tests.training.fixtures import make_learnable_cache


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return make_learnable_cache(tmp_path_factory.mktemp("cache") / "features", images={"train": 30, "val": 20})


def test_flags_override_yaml_and_set_overrides_flags(cache_dir, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("combiner: sum\nloss: triplet\nnegatives: random\nnum_negatives: 2\nepochs: 5\n"
                      "batch_size: 16\nlr: 0.5\ntensorboard: false\n", encoding="utf-8")
    out = tmp_path / "run"
    code = cli.main(["train", "--config", str(config), "--features", str(cache_dir), "--out", str(out),
                     "--epochs", "3", "--lr", "0.1", "--set", "lr=0.2", "--stop-after-epochs", "1"])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["epochs"], saved["lr"], saved["batch_size"], saved["combiner"]) == (3, 0.2, 16, "sum")
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 1

    assert cli.main(["train", "--resume", "--out", str(out)]) == 0  # the run's own config.json is the base
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["epochs_completed"] == 3


def test_bad_yaml_is_one_line_with_file_and_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("epochs: 3\nlr: {0.1\n", encoding="utf-8")
    assert cli.main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cirlab: error: {config}:") and "invalid YAML" in err
    assert err.count("\n") == 1


def test_unknown_sampler_is_one_line(cache_dir, tmp_path, capsys):
    code = cli.main(["train", "--features", str(cache_dir), "--out", str(tmp_path / "r"), "--combiner", "sum",
                     "--negatives", "hardest", "--batch-size", "16", "--no-tensorboard"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown negative sampler 'hardest'" in err and err.count("\n") == 1
