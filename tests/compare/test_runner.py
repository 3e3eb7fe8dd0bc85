"""``compare`` end to end on a tiny learnable cache: outputs, numbers, reuse, resume and refusals."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cirlab.combiners import build_combiner
from cirlab.compare import runner
from cirlab.compare.runner import CONTRASTIVE_RUN, compare, plan_runs
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.evaluation import evaluate_fashioniq
from cirlab.features.cache import FeatureCache
from cirlab.training import load_config, train
from tests.compare.datasets import make_comparison_data

OVERRIDES = {"batch_size": 32, "num_negatives": 4, "tensorboard": False, "warmup_steps": 0, "lr": 3e-3,
             "combiner_options": {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.0}}
STRATEGIES = ["random", "category"]


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the models are tiny and the tests share a small machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_comparison_data(tmp_path_factory.mktemp("compare-data"))


@pytest.fixture(scope="module")
def compared(data, tmp_path_factory):
    """One finished two-strategy comparison (2 epochs), shared by the tests that only read it."""
    features, _ = data
    out = tmp_path_factory.mktemp("compare") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = compare("synthetic", STRATEGIES, out, epochs=2, features=features, overrides=OVERRIDES,
                         queries=3)
    finally:
        torch.set_num_threads(threads)
    return result


@pytest.mark.slow
def test_report_json_and_figures_are_written(compared):
    out = compared.out
    for name in ("report.md", "comparison.json", "recall_at_10.png", "training_curves.png",
                 "queries-random.png", "queries-category.png"):
        assert (out / name).is_file(), name
    for name in ("recall_at_10.png", "training_curves.png", "queries-random.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 300
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| random |" in report and "| category |" in report and "*untrained sum*" in report
    assert "![Validation Recall@10 per epoch](recall_at_10.png)" in report
    assert "![Top 10 results of category](queries-category.png)" in report
    assert compared.verdicts["category"] in report
    assert "cirlab compare --config synthetic" in report


@pytest.mark.slow
def test_numbers_match_the_runs_and_the_sum_baseline(compared, data):
    features, _ = data
    saved = json.loads((compared.out / "comparison.json").read_text(encoding="utf-8"))
    assert {"cirlab", "torch", "git_commit"} <= set(saved["setup"]["provenance"])  # what produced these numbers
    histories = {}
    for name in STRATEGIES:
        metrics = json.loads((compared.out / "runs" / name / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["status"] == "complete" and metrics["epochs_completed"] == 2
        assert metrics["config"]["negatives"] == name and metrics["config"]["eval_every"] == 1
        history = metrics["history"]
        histories[name] = history
        assert [r["epoch"] for r in history] == [0, 1, 2] and all("val/headline" in r for r in history)
        run = saved["runs"][name]
        assert run["final"]["R@10"] == pytest.approx(history[-1]["val/mean/R@10"])
        best = max(history, key=lambda r: r["val/headline"])
        assert run["best_headline"] == pytest.approx(best["val/headline"]) and run["best_epoch"] == best["epoch"]
        assert run["steps"] == metrics["steps"]
        assert run["sample_s_per_step"] == pytest.approx(
            sum(r["time/mean_sample_s"] * r["steps"] for r in history[1:]) / sum(r["steps"] for r in history[1:]))

    cache = FeatureCache.open(features)
    baseline = evaluate_fashioniq(cache, build_combiner("sum", cache.dim), show_progress=False)
    assert saved["baseline"]["recall"]["R@10"] == pytest.approx(baseline.mean[10])
    assert saved["baseline"]["headline"] == pytest.approx(baseline.headline)

    best_final = max(h[-1]["val/mean/R@10"] for h in histories.values())
    expected = baseline.mean[10] + 0.9 * (best_final - baseline.mean[10])
    assert saved["threshold"]["value"] == pytest.approx(expected)
    for name, history in histories.items():
        reached = next((r["epoch"] for r in history if r["val/mean/R@10"] >= expected), None)
        assert saved["runs"][name]["threshold_epoch"] == reached
    # the task is learnable and the sum combiner cannot solve it: training must beat it
    assert all(saved["runs"][n]["best_headline"] > saved["baseline"]["headline"] for n in STRATEGIES)


@pytest.mark.slow
def test_rerun_reuses_finished_runs_without_training(compared, data, monkeypatch, caplog):
    features, _ = data
    before = {n: (compared.out / "runs" / n / "metrics.json").stat().st_mtime_ns for n in STRATEGIES}

    def no_training(config):
        raise AssertionError(f"{config.out} was trained again")

    monkeypatch.setattr(runner, "_train", no_training)
    with caplog.at_level("INFO", logger=runner.__name__):
        again = compare("synthetic", STRATEGIES, compared.out, epochs=2, features=features, overrides=OVERRIDES,
                        queries=0)
    assert again.reused == STRATEGIES
    assert sum("finished earlier; reusing" in record.getMessage() for record in caplog.records) == 2
    assert {n: (compared.out / "runs" / n / "metrics.json").stat().st_mtime_ns for n in STRATEGIES} == before
    for name in STRATEGIES:
        assert again.runs[name].final == compared.runs[name].final


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(data, tmp_path):
    features, _ = data
    out = tmp_path / "out"
    base = load_config("synthetic", [*OVERRIDES.items(), ("features", str(features)), ("epochs", 2),
                                     ("out", str(out))])
    (plan,) = plan_runs(base, ["random"], out)
    stopped = train(dataclasses.replace(plan.config, stop_after_epochs=1))
    assert stopped.status == "stopped"
    first_epoch = stopped.history[1]

    trained: list[str] = []
    real_train = runner._train

    def spy(config):
        trained.append(config.out)
        return real_train(config)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "_train", spy)
        result = compare("synthetic", ["random"], out, epochs=2, features=features, overrides=OVERRIDES, queries=0)
    assert trained == [str(out / "runs" / "random")]
    metrics = json.loads((out / "runs" / "random" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["status"] == "complete" and [r["epoch"] for r in metrics["history"]] == [0, 1, 2]
    # the first epoch comes from the interrupted invocation (its own timing), not from a retraining
    assert metrics["history"][1]["time/epoch_s"] == first_epoch["time/epoch_s"]
    assert result.runs["random"].epochs == 2


@pytest.mark.slow
def test_a_finished_run_of_another_config_is_refused(compared, data):
    features, _ = data
    with pytest.raises(ConfigError, match=r"runs/random: holds a run of another config \(lr"):
        compare("synthetic", STRATEGIES, compared.out, epochs=2, features=features,
                overrides={**OVERRIDES, "lr": 1e-2}, queries=0)
    with pytest.raises(ConfigError, match="holds a run of 2 epochs, more than the 1 asked"):
        compare("synthetic", STRATEGIES, compared.out, epochs=1, features=features, overrides=OVERRIDES, queries=0)


@pytest.mark.slow
def test_a_finished_run_on_another_cache_is_refused(compared, tmp_path):
    other, _ = make_comparison_data(tmp_path, seed=5, with_images=False)
    with pytest.raises(CacheMismatchError, match=r"runs/random/last/combiner.json: made from other features than "
                                                 r"the feature cache .*data_fingerprint: recorded 'compare-test-0', "
                                                 r"cache 'compare-test-5'.*; choose another --out"):
        compare("synthetic", STRATEGIES, compared.out, epochs=2, features=other, overrides=OVERRIDES, queries=0)


def test_plan_gives_every_run_the_same_config_but_its_sampler(data, tmp_path):
    features, _ = data
    base = load_config("synthetic", [("features", str(features)), ("out", str(tmp_path)), ("epochs", 3)])
    plans = plan_runs(base, ["random", "semi-hard"], tmp_path, include_contrastive=True)
    assert [p.name for p in plans] == ["random", "semi-hard", CONTRASTIVE_RUN]
    random_config, semi_config, reference = (p.config.to_dict() for p in plans)
    differing = {k for k in random_config if random_config[k] != semi_config[k]}
    assert differing == {"negatives", "out"}
    assert random_config["eval_every"] == 1 and random_config["resume"] is True
    assert reference["loss"] == "contrastive" and reference["negatives"] == "in-batch"
    assert reference["loss_options"] == {} and reference["batch_size"] == random_config["batch_size"]
    assert plans[-1].mines is False and plans[0].mines is True


@pytest.mark.parametrize("choice", [{}, {"categories": ["shirt"]}, {"categories": ["shirt", "dress"]},
                                    {"categories": ["dress"], "val_categories": ["shirt"]}])
def test_compare_evaluates_the_categories_the_trainer_evaluates(data, tmp_path, choice):
    features, _ = data
    config = load_config("synthetic", [*OVERRIDES.items(), *choice.items(), ("features", str(features)),
                                       ("out", str(tmp_path / "run")), ("epochs", 0)])
    result = train(config)  # no epoch: only the untrained combiner is evaluated
    cache = FeatureCache.open(features)
    by_trainer = [key.split("/")[1] for key in result.history[-1]
                  if key.startswith("val/") and key.endswith("/R@10") and key != "val/mean/R@10"]
    assert runner.evaluated_categories(cache, config) == by_trainer


def test_a_finished_run_of_another_config_or_cache_is_refused_before_training(data, tmp_path):
    features, _ = data
    base = load_config("synthetic", [*OVERRIDES.items(), ("features", str(features)), ("epochs", 0),
                                     ("out", str(tmp_path))])
    (plan,) = plan_runs(base, ["random"], tmp_path)
    train(plan.config)
    cache = FeatureCache.open(features)
    assert runner.finished_run(plan, cache)["status"] == "complete"
    moved = dataclasses.replace(plan.config, features=str(features) + "/", out=f"./{plan.config.out}", device="cpu")
    # paths and the device may change
    runner.check_same_run(runner.finished_run(plan, cache)["config"], moved, run_dir=plan.run_dir)
    with pytest.raises(ConfigError, match=r"random: holds a run of another config \(lr: checkpoint 0.003, now 0.1\)"):
        runner.finished_run(dataclasses.replace(plan, config=dataclasses.replace(plan.config, lr=0.1)), cache)
    other, _ = make_comparison_data(tmp_path / "other", seed=5, with_images=False)
    with pytest.raises(CacheMismatchError, match="data_fingerprint: recorded 'compare-test-0', cache 'compare-test-5'"):
        runner.finished_run(plan, FeatureCache.open(other))


@pytest.mark.parametrize(("strategies", "message"), [
    (["random", "nearest"], r"unknown strategies \['nearest'\]"),
    (["hard", "hard"], "strategies listed twice: hard"),
    ([" "], "no strategies given"),
])
def test_bad_strategy_lists_are_refused(data, tmp_path, strategies, message):
    features, _ = data
    base = load_config("synthetic", [("features", str(features)), ("out", str(tmp_path))])
    with pytest.raises(ConfigError, match=message):
        plan_runs(base, strategies, tmp_path)


@pytest.mark.slow
def test_missing_images_and_a_missing_random_run_are_noted(tmp_path):
    features, _ = make_comparison_data(tmp_path / "data", with_images=False, images={"train": 20, "val": 12})
    result = compare("synthetic", ["category"], tmp_path / "out", epochs=1, features=features,
                     overrides=OVERRIDES)
    assert not list((tmp_path / "out").glob("queries-*.png"))
    assert any("records no data_root" in note for note in result.notes)
    assert any("no 'random' run" in note for note in result.notes) and result.verdicts == {}
    assert "## Notes" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "verdicts" in json.loads((tmp_path / "out" / "comparison.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_cli_prints_the_table_and_reports_errors_on_one_line(compared, data, capsys):
    from cirlab.cli import main

    features, _ = data
    sets = [item for key, value in OVERRIDES.items() for item in ("--set", f"{key}={json.dumps(value)}")]
    code = main(["compare", "--features", str(features), "--strategies", ",".join(STRATEGIES), "--epochs", "2",
                 "--queries", "0", "--out", str(compared.out), *sets])
    captured = capsys.readouterr()
    assert code == 0
    assert "untrained sum" in captured.out and "category learned" in captured.out
    code = main(["compare", "--features", str(features), "--strategies", "random,bogus", "--out",
                 str(compared.out)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and "unknown strategies ['bogus']" in captured.err


@pytest.mark.slow
def test_copy_of_a_comparison_reads_back(compared, tmp_path):
    from cirlab.compare.result import ComparisonResult

    copy = tmp_path / "copy"
    shutil.copytree(compared.out, copy, ignore=shutil.ignore_patterns("runs"))
    loaded = ComparisonResult.from_dict(json.loads((copy / "comparison.json").read_text(encoding="utf-8")), copy)
    assert loaded.runs == compared.runs
    assert loaded.baseline == compared.baseline and loaded.threshold == compared.threshold
    assert np.isclose(loaded.best_run().best_headline, compared.best_run().best_headline)
