"""``cirlab train``: YAML, flags and --set in that order of precedence; resume from the run folder; errors."""

from __future__ import annotations

import json
import re

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


def test_result_on_stdout_and_progress_on_stderr_as_plain_lines(cache_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIRLAB_NO_PROGRESS", "0")  # stderr is not a terminal here: plain lines, no redraws
    out = tmp_path / "run"
    assert cli.main(["train", "--features", str(cache_dir), "--out", str(out), "--combiner", "sum", "--loss",
                     "triplet", "--num-negatives", "2", "--epochs", "2", "--batch-size", "16",
                     "--no-tensorboard"]) == 0
    captured = capsys.readouterr()
    result = re.fullmatch(rf"{re.escape(str(out.resolve()))}: complete after 2 epochs \((\d+) steps\); best "
                          rf"validation headline [\d.]+ at epoch \d \(in {re.escape(str(out.resolve() / 'best'))}\)\n",
                          captured.out)
    assert result is not None, captured.out  # the result alone
    steps = int(result.group(1))
    assert "\r" not in captured.err and "epoch 2/2" in captured.err
    progress = [line for line in captured.err.splitlines() if line.startswith("train: ")]
    assert progress[-1].startswith(f"train: {steps}/{steps} step (100%)") and 1 < len(progress) <= 10


def test_quiet_leaves_only_the_result(cache_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIRLAB_NO_PROGRESS", "0")
    out = tmp_path / "run"
    assert cli.main(["--quiet", "train", "--features", str(cache_dir), "--out", str(out), "--combiner", "sum",
                     "--loss", "triplet", "--num-negatives", "2", "--epochs", "1", "--batch-size", "16",
                     "--no-tensorboard"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith(f"{out.resolve()}: complete after 1 epochs")


def test_switching_the_loss_of_a_shipped_config_starts_from_the_new_loss_defaults(cache_dir, tmp_path):
    # docs/fashioniq.md's command, on tiny data: the config's contrastive logit_scale must not reach triplet
    out = tmp_path / "run"
    tiny = ["--categories", "dress,shirt", "--epochs", "1", "--batch-size", "16", "--num-negatives", "2",
            "--precision", "fp32", "--no-tensorboard", "--set", "combiner_options.projection_dim=16",
            "--set", "combiner_options.hidden_dim=32"]
    assert cli.main(["train", "--config", "fashioniq-rn50x4", "--loss", "triplet", "--negatives", "hard",
                     "--set", "loss_options.margin=0.2", "--features", str(cache_dir), "--out", str(out),
                     *tiny]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["loss"], saved["loss_options"], saved["negatives"]) == ("triplet", {"margin": 0.2}, "hard")
    assert saved["combiner_options"] == {"projection_dim": 16, "hidden_dim": 32, "dropout": 0.5}


def test_a_run_resumes_from_any_spelling_of_its_folder_and_any_working_directory(cache_dir, tmp_path,
                                                                                 monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(home)
    assert cli.main(["train", "--features", str(cache_dir), "--out", "runs/x", "--combiner", "sum", "--loss", "triplet",
                     "--num-negatives", "2", "--epochs", "5", "--batch-size", "16", "--no-tensorboard",
                     "--stop-after-epochs", "1"]) == 0
    run = home / "runs" / "x"
    spellings = ["runs/x/", "./runs/x", str(run)]
    for epoch, spelling in enumerate(spellings, start=2):
        assert cli.main(["train", "--resume", "--out", spelling, "--stop-after-epochs", str(epoch)]) == 0, spelling
        assert json.loads((run / "metrics.json").read_text())["epochs_completed"] == epoch
    monkeypatch.chdir(elsewhere)
    assert cli.main(["train", "--resume", "--out", "../home/runs/x"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["epochs_completed"] == 5


def test_a_run_with_relative_paths_resumes_from_another_working_directory(tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_learnable_cache(home / "features", images={"train": 30, "val": 20})
    monkeypatch.chdir(home)
    assert cli.main(["train", "--features", "features", "--out", "run", "--combiner", "sum", "--loss", "triplet",
                     "--num-negatives", "2", "--epochs", "2", "--batch-size", "16", "--no-tensorboard",
                     "--stop-after-epochs", "1"]) == 0
    monkeypatch.chdir(elsewhere)
    assert cli.main(["train", "--resume", "--out", str(home / "run")]) == 0
    assert json.loads((home / "run" / "metrics.json").read_text())["status"] == "complete"
