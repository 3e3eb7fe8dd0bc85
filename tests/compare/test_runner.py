"""``compare`` end to end on a tiny learnable cache: seeds, outputs, numbers, reuse, resume, test split and refusals."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from PIL import Image

from cirlab.combiners import build_combiner, load_combiner_for
from cirlab.compare import runner
from cirlab.compare.runner import CONTRASTIVE_RUN, SEED_SYSTEM_RUN, compare, plan_runs, recompute
from cirlab.compare.statistics import recalls
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.evaluation import evaluate_cache
from cirlab.evaluation.ranks import read_ranks
from cirlab.features.cache import FeatureCache
from cirlab.training import load_config, train
from tests.compare.datasets import make_comparison_data

OVERRIDES = {"batch_size": 32, "num_negatives": 4, "tensorboard": False, "warmup_steps": 0, "lr": 3e-3,
             "combiner_options": {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.0}}
STRATEGIES = ["random", "category"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_comparison_data(tmp_path_factory.mktemp("compare-data"))


@pytest.fixture(scope="module")
def compared(data, tmp_path_factory):
    """One finished two-strategy, two-seed comparison (2 epochs), shared by the tests that only read it."""
    features, _ = data
    out = tmp_path_factory.mktemp("compare") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = compare("synthetic", STRATEGIES, out, seeds=2, epochs=2, features=features, overrides=OVERRIDES,
                         queries=3, draws=300)
    finally:
        torch.set_num_threads(threads)
    return result


def run_folder(result, strategy, seed):
    return result.out / "runs" / strategy / f"seed-{seed}"


@pytest.mark.slow
def test_report_json_and_figures_are_written(compared):
    out = compared.out
    for name in ("report.md", "comparison.json", "recall_at_10.png", "training_curves.png", "negative_ledger.png",
                 "queries-random.png", "queries-category.png"):
        assert (out / name).is_file(), name
    for name in ("recall_at_10.png", "training_curves.png", "queries-random.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 300
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| random | " in report and "| category | " in report and "*untrained sum*" in report
    assert "**Reported: `val` split, last epoch of each run.**" in report  # no test targets: nothing selected
    assert "![Validation Recall@10 per epoch](recall_at_10.png)" in report
    assert "![Top 10 results of category](queries-category.png)" in report
    assert "cirlab compare --config synthetic" in report and "--seeds 2" in report


@pytest.mark.slow
def test_numbers_are_computed_from_every_seeds_ranks(compared, data):
    features, _ = data
    saved = json.loads((compared.out / "comparison.json").read_text(encoding="utf-8"))
    assert {"cirlab", "torch", "git_commit"} <= set(saved["setup"]["provenance"])  # what produced these numbers
    assert (saved["reported"], saved["selection"], saved["setup"]["seeds"]) == ("val", "last", SEEDS)
    finals = {}
    for name in STRATEGIES:
        values = []
        for seed in SEEDS:
            metrics = json.loads((run_folder(compared, name, seed) / "metrics.json").read_text(encoding="utf-8"))
            assert metrics["status"] == "complete" and metrics["config"]["seed"] == seed
            assert metrics["config"]["negatives"] == name and metrics["config"]["eval_every"] == 1
            ranks = read_ranks(run_folder(compared, name, seed) / "ranks.npz")["val/epoch-0002"]
            values.append(recalls({c: r.ranks for c, r in ranks.items()}).metrics["R@10"])
            assert values[-1] == pytest.approx(metrics["history"][-1]["val/mean/R@10"])
        finals[name] = values
        assert saved["strategies"][name]["selected"]["R@10"]["values"] == pytest.approx(values)
    # seeds differ: initialisation, data order and negatives (the training losses, continuous, tell them apart)
    losses = [json.loads((run_folder(compared, "random", seed) / "metrics.json").read_text())["history"][1]
              ["train/loss"] for seed in SEEDS]
    assert losses[0] != losses[1]
    assert saved["learning_speed"]["threshold"] == pytest.approx(sum(finals["random"]) / 2)
    observed = saved["strategies"]["category"]["versus_baseline"]["metrics"]["R@10"]["observed"]
    assert observed == pytest.approx(sum(c - r for c, r in zip(finals["category"], finals["random"])) / 2)

    cache = FeatureCache.open(features)
    baseline = evaluate_cache(cache, build_combiner("sum", cache.dim), show_progress=False)
    assert saved["untrained_sum"]["recall"]["R@10"] == pytest.approx(baseline.mean[10])
    # two epochs on galleries of 24 images leave the runs near chance (R@10 10/24): no verdict is drawn, and the
    # report says why
    assert saved["chance"]["R@10"] == pytest.approx(100 * 10 / 24)
    assert not saved["strategies"]["category"]["above_chance"] and saved["strategies"]["category"]["verdict"] is None
    assert any("category is not clearly above chance" in note for note in saved["notes"])
    assert saved["queries"]["val"]["excluded_queries"]["dress"] == {"missing_image": 0, "target_withheld": 0}


@pytest.mark.slow
def test_a_report_is_recomputed_from_the_run_folders(compared):
    report = compared.out / "report.md"
    before = report.stat().st_mtime_ns
    again = recompute(compared.out, write=False)  # the runs' metrics.json and ranks.npz, nothing trained
    for name, strategy in compared.strategies.items():
        assert again.strategies[name].selected["R@10"].values == strategy.selected["R@10"].values
        assert again.strategies[name].verdict == strategy.verdict
    assert again.speed.threshold == compared.speed.threshold and report.stat().st_mtime_ns == before
    recompute(compared.out)
    assert report.read_text(encoding="utf-8").startswith("# Negative-sampling comparison")


@pytest.mark.slow
def test_rerun_reuses_finished_runs_without_training(compared, data, monkeypatch, caplog):
    features, _ = data
    folders = [run_folder(compared, n, s) / "metrics.json" for n in STRATEGIES for s in SEEDS]
    before = [path.stat().st_mtime_ns for path in folders]

    def no_training(config):
        raise AssertionError(f"{config.out} was trained again")

    monkeypatch.setattr(runner, "_train", no_training)
    with caplog.at_level("INFO", logger=runner.__name__):
        again = compare("synthetic", STRATEGIES, compared.out, seeds=2, epochs=2, features=features,
                        overrides=OVERRIDES, queries=0, draws=300)
    assert again.reused == [f"{n}/seed-{s}" for n in STRATEGIES for s in SEEDS]
    assert sum("finished earlier; reusing" in record.getMessage() for record in caplog.records) == 4
    assert [path.stat().st_mtime_ns for path in folders] == before
    for name in STRATEGIES:
        assert again.strategies[name].selected["R@10"].values == compared.strategies[name].selected["R@10"].values


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(data, tmp_path):
    features, _ = data
    out = tmp_path / "out"
    base = load_config("synthetic", [*OVERRIDES.items(), ("features", str(features)), ("epochs", 2),
                                     ("out", str(out)), ("seeds", 1)])
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
        compare("synthetic", ["random"], out, seeds=1, epochs=2, features=features, overrides=OVERRIDES, queries=0,
                draws=300)
    assert trained == [str(out / "runs" / "random" / "seed-0")]
    metrics = json.loads((out / "runs" / "random" / "seed-0" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["status"] == "complete" and [r["epoch"] for r in metrics["history"]] == [0, 1, 2]
    # the first epoch comes from the interrupted invocation (its own timing), not from a retraining
    assert metrics["history"][1]["time/epoch_s"] == first_epoch["time/epoch_s"]


@pytest.mark.slow
def test_a_split_with_test_targets_is_reported_with_the_checkpoint_selected_on_val(tmp_path):
    features, _ = make_comparison_data(tmp_path / "data", with_images=False,
                                       images={"train": 40, "val": 24, "test": 20})
    result = compare("synthetic", ["random"], tmp_path / "out", seeds=2, epochs=2, features=features,
                     overrides=OVERRIDES, queries=0, draws=300)
    assert (result.reported, result.selection) == ("test", "val")
    cache = FeatureCache.open(features)
    for seed, value in zip(SEEDS, result.strategies["random"].selected["R@10"].values):
        folder = tmp_path / "out" / "runs" / "random" / f"seed-{seed}"
        combiner, _ = load_combiner_for(cache, folder / "best")
        expected = evaluate_cache(cache, combiner, split="test", show_progress=False)
        assert value == pytest.approx(expected.mean[10])
        assert "test/best" in read_ranks(folder / "ranks.npz")
    assert "test" in result.queries and "**Reported: `test` split, best validation epoch" in result.report.read_text()
    last = compare("synthetic", ["random"], tmp_path / "out", seeds=2, epochs=2, features=features,
                   overrides=OVERRIDES, queries=0, draws=300, selection="last")
    assert last.selection == "last" and "test/last" in read_ranks(tmp_path / "out" / "runs" / "random" / "seed-0"
                                                                  / "ranks.npz")


@pytest.mark.slow
def test_a_finished_run_of_another_config_is_refused(compared, data):
    features, _ = data
    with pytest.raises(ConfigError, match=r"runs/random/seed-0: holds a run of another config \(lr"):
        compare("synthetic", STRATEGIES, compared.out, seeds=2, epochs=2, features=features,
                overrides={**OVERRIDES, "lr": 1e-2}, queries=0)
    with pytest.raises(ConfigError, match="holds a run of 2 epochs, more than the 1 asked"):
        compare("synthetic", STRATEGIES, compared.out, seeds=2, epochs=1, features=features, overrides=OVERRIDES,
                queries=0)


@pytest.mark.slow
def test_a_finished_run_on_another_cache_is_refused(compared, tmp_path):
    other, _ = make_comparison_data(tmp_path, seed=5, with_images=False)
    with pytest.raises(CacheMismatchError, match=r"runs/random/seed-0/last/combiner.json: made from other features "
                                                 r"than the feature cache .*data_fingerprint: recorded "
                                                 r"'compare-test-0', cache 'compare-test-5'.*; choose another --out"):
        compare("synthetic", STRATEGIES, compared.out, seeds=2, epochs=2, features=other, overrides=OVERRIDES,
                queries=0)


def test_plan_gives_every_run_the_same_config_but_its_sampler_and_seed(data, tmp_path):
    features, _ = data
    base = load_config("synthetic", [("features", str(features)), ("out", str(tmp_path)), ("epochs", 3),
                                     ("seed", 5), ("seeds", 2), ("batch_size", 32),
                                     ("negatives_options.near_duplicate_threshold", None)])
    plans = plan_runs(base, ["random", "semi-hard"], tmp_path, include_contrastive=True, include_seed=True)
    assert [p.name for p in plans] == ["random/seed-5", "random/seed-6", "semi-hard/seed-5", "semi-hard/seed-6",
                                       f"{CONTRASTIVE_RUN}/seed-5", f"{CONTRASTIVE_RUN}/seed-6",
                                       f"{SEED_SYSTEM_RUN}/seed-5", f"{SEED_SYSTEM_RUN}/seed-6"]
    assert plans[1].run_dir == tmp_path / "runs" / "random" / "seed-6"
    random_config, semi_config = plans[0].config.to_dict(), plans[2].config.to_dict()
    assert {k for k in random_config if random_config[k] != semi_config[k]} == {"negatives", "out"}
    assert {k for k, v in plans[1].config.to_dict().items() if random_config[k] != v} == {"seed", "out"}
    assert random_config["eval_every"] == 1 and random_config["resume"] is True
    reference = plans[4].config
    assert reference.loss == "contrastive" and reference.negatives == "in-batch" and reference.loss_options == {}
    assert not plans[4].mines and plans[0].mines
    seed_system = plans[6].config  # the seed's own recipe, on the same features, seeds and budget
    assert seed_system.combiner == "attention-fusion" and seed_system.combiner_options["variant"] == "seed"
    assert (seed_system.batch_size, seed_system.num_negatives, seed_system.lr) == (64, 1, 1e-4)
    assert (seed_system.epochs, seed_system.seed, seed_system.features) == (3, 5, base.features)
    # the false-negative guard's setting belongs to the features and reaches the reference runs too
    assert seed_system.negatives_options == {"near_duplicate_threshold": None}


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
                                     ("out", str(tmp_path)), ("seeds", 1)])
    (plan,) = plan_runs(base, ["random"], tmp_path)
    train(plan.config)
    cache = FeatureCache.open(features)
    assert runner.finished_run(plan, cache)["status"] == "complete"
    moved = dataclasses.replace(plan.config, features=str(features) + "/", out=f"./{plan.config.out}", device="cpu")
    # paths and the device may change
    runner.check_same_run(runner.finished_run(plan, cache)["config"], moved, run_dir=plan.run_dir)
    with pytest.raises(ConfigError, match=r"seed-0: holds a run of another config \(lr: checkpoint 0.003, now 0.1\)"):
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


@pytest.mark.parametrize(("options", "message"), [
    ({"baseline": "semi-hard"}, "the baseline 'semi-hard' is not among the compared runs"),
    ({"selection": "best"}, "unknown selection 'best'"),
    ({"draws": 10}, "at least 100 draws"),
    ({"seeds": 0}, "config key seeds must be at least 1"),
])
def test_bad_comparison_settings_are_refused_before_training(data, tmp_path, options, message):
    features, _ = data
    with pytest.raises(ConfigError, match=message):
        compare("synthetic", ["random"], tmp_path / "out", features=features, overrides=OVERRIDES, **options)
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
def test_missing_images_are_noted(tmp_path):
    features, _ = make_comparison_data(tmp_path / "data", with_images=False, images={"train": 20, "val": 12})
    result = compare("synthetic", ["random"], tmp_path / "out", seeds=1, epochs=1, features=features,
                     overrides=OVERRIDES, draws=300)
    assert not list((tmp_path / "out").glob("queries-*.png"))
    assert any("records no data_root" in note for note in result.notes)
    assert "## Notes" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_cli_prints_the_table_and_reports_errors_on_one_line(compared, data, capsys):
    from cirlab.cli import main

    features, _ = data
    sets = [item for key, value in OVERRIDES.items() for item in ("--set", f"{key}={json.dumps(value)}")]
    code = main(["compare", "--features", str(features), "--strategies", ",".join(STRATEGIES), "--epochs", "2",
                 "--seeds", "2", "--draws", "300", "--queries", "0", "--out", str(compared.out), *sets])
    captured = capsys.readouterr()
    assert code == 0
    assert "untrained sum" in captured.out and "val split, last checkpoint, mean ± sd over 2 seeds" in captured.out
    code = main(["compare", "--features", str(features), "--strategies", "random,bogus", "--out",
                 str(compared.out)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and "unknown strategies ['bogus']" in captured.err
