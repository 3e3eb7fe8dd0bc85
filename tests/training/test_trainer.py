"""The trainer end to end on tiny learnable caches: learning, exact resume, checkpoints, records, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cirlab.combiners import build_combiner, load_combiner
from cirlab.engine import read_state
from cirlab.engine.loop import Engine
from cirlab.engine.runlog import read_csv
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.evaluation import evaluate_cache, recall_from_ranks
from cirlab.evaluation.ranks import read_ranks
from cirlab.features.cache import FeatureCache
from cirlab.training import load_config, train
from tests.training.fixtures import make_learnable_cache


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return make_learnable_cache(tmp_path_factory.mktemp("cache") / "features")


def quick_config(cache_dir, out, **overrides):
    values = {
        "features": str(cache_dir), "out": str(out), "combiner": "combiner", "loss": "triplet",
        "negatives": "random", "num_negatives": 8, "epochs": 3, "batch_size": 32, "lr": 3e-3,
        "combiner_options": {"projection_dim": 48, "hidden_dim": 96, "dropout": 0.0},
        "loss_options": {"margin": 0.2}, "tensorboard": False, "seed": 7,
    }
    values.update(overrides)
    return load_config(None, values)


def sum_baseline(cache_dir) -> float:
    cache = FeatureCache.open(cache_dir)
    return evaluate_cache(cache, build_combiner("sum", cache.dim), show_progress=False).headline


@pytest.mark.slow
@pytest.mark.parametrize("negatives", ["random", "category", "semi-hard", "hard"])
def test_training_learns_and_beats_the_sum_baseline(cache_dir, tmp_path, negatives):
    result = train(quick_config(cache_dir, tmp_path / "run", negatives=negatives, epochs=5))
    baseline = sum_baseline(cache_dir)
    history = result.history
    assert result.status == "complete" and result.epochs_completed == 5
    assert history[-1]["train/loss"] < history[1]["train/loss"]
    assert history[-1]["val/headline"] > history[0]["val/headline"] + 10
    assert result.best_headline > baseline + 10, (negatives, result.best_headline, baseline)
    assert history[-1]["sampler/queries"] == result.history[-1]["steps"] * 32


def without_times(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/") and not k.endswith("time_s")} for r in records]


def weights(folder):
    return load_file(str(folder / "combiner.safetensors"))


def assert_same_run(a, b):
    for name in ("best", "last"):
        wa, wb = weights(a / name), weights(b / name)
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(wa[key], wb[key]), (name, key)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert without_times(ma["history"]) == without_times(mb["history"])
    assert ma["best"]["epoch"] == mb["best"]["epoch"]
    sa, sb = read_csv(a / "steps.csv"), read_csv(b / "steps.csv")
    assert without_times(sa) == without_times(sb)
    ea, eb = read_csv(a / "epochs.csv"), read_csv(b / "epochs.csv")
    assert without_times(ea) == without_times(eb)
    ra, rb = read_ranks(a / "ranks.npz"), read_ranks(b / "ranks.npz")
    assert list(ra) == list(rb)
    assert all(np.array_equal(ra[n][c].ranks, rb[n][c].ranks) for n in ra for c in ra[n])


@pytest.mark.slow
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(cache_dir, tmp_path):
    options = {"negatives": "category", "epochs": 3, "combiner_options": {"projection_dim": 32, "hidden_dim": 64,
                                                                          "dropout": 0.2}}
    full = train(quick_config(cache_dir, tmp_path / "full", **options))
    stopped = train(quick_config(cache_dir, tmp_path / "split", stop_after_epochs=1, **options))
    assert stopped.status == "stopped" and stopped.epochs_completed == 1
    assert json.loads((tmp_path / "split" / "metrics.json").read_text())["status"] == "stopped"
    resumed = train(quick_config(cache_dir, tmp_path / "split", resume=True, **options))
    assert resumed.status == "complete" and resumed.epochs_completed == 3 and resumed.steps == full.steps
    assert_same_run(tmp_path / "full", tmp_path / "split")


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_exactly(cache_dir, tmp_path, monkeypatch):
    options = {"negatives": "hard", "epochs": 2, "tensorboard": True,
               "combiner_options": {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.2}}
    train(quick_config(cache_dir, tmp_path / "full", **options))

    original = Engine._train_step

    def killed_at_step_14(self, batch):
        if self.step == 14:  # in epoch 2 (10 steps per epoch), after epoch 1's checkpoint
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Engine, "_train_step", killed_at_step_14)
    with pytest.raises(KeyboardInterrupt):
        train(quick_config(cache_dir, tmp_path / "killed", **options))
    assert len(read_csv(tmp_path / "killed" / "steps.csv")) == 14
    monkeypatch.setattr(Engine, "_train_step", original)
    train(quick_config(cache_dir, tmp_path / "killed", resume=True, **options))
    assert len(read_csv(tmp_path / "killed" / "steps.csv")) == 20
    assert_same_run(tmp_path / "full", tmp_path / "killed")


@pytest.mark.slow
def test_run_folder_contents(cache_dir, tmp_path):
    out = tmp_path / "run"
    config = quick_config(cache_dir, out, epochs=3, eval_every=2, tensorboard=True, log_every=3)
    result = train(config)

    assert json.loads((out / "config.json").read_text()) == config.to_dict()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["epochs_completed"] == 3 and metrics["steps"] == 30
    assert metrics["data"]["train_triplets"] == 320 and metrics["data"]["gallery_size"] == 160
    assert [r["epoch"] for r in metrics["history"]] == [0, 1, 2, 3]
    evaluated = [r["epoch"] for r in metrics["history"] if "val/headline" in r]
    assert evaluated == [0, 2, 3]  # before training, every 2 epochs, and the last one
    assert metrics["best"]["epoch"] == result.best_epoch
    assert metrics["best"]["metric"] == "val/headline"
    assert metrics["best"]["value"] == max(metrics["history"][e]["val/headline"] for e in evaluated)
    assert {"cirlab", "torch", "open_clip"} <= set(metrics["provenance"])
    for record in metrics["history"][1:]:
        assert record["steps"] == 10 and record["time/mean_sample_s"] >= 0
        assert {"train/loss", "train/active_fraction", "train/mean_d_pos", "train/mean_d_neg"} <= set(record)
        assert record["sampler/queries"] == 320 and "sampler/fallback_negatives" in record
    assert {"val/mean/R@10", "val/dress/R@50", "val/shirt/R@1"} <= set(metrics["history"][0])

    epochs = read_csv(out / "epochs.csv")
    assert [int(r["epoch"]) for r in epochs] == [0, 1, 2, 3]
    assert epochs[1]["val/headline"] == ""  # epoch 1 was not evaluated
    assert float(epochs[3]["val/headline"]) == pytest.approx(metrics["history"][3]["val/headline"])
    steps = read_csv(out / "steps.csv")
    assert list(steps[0]) == ["epoch", "step", "lr", "loss", "active_fraction", "mean_d_pos", "mean_d_neg",
                              "sample_time_s", "step_time_s"]
    assert [int(r["step"]) for r in steps] == list(range(3, 31, 3))
    assert all(0 <= float(r["active_fraction"]) <= 1 and float(r["sample_time_s"]) >= 0 for r in steps)

    # best/ holds the combiner that scored the best headline; last/ the final one with the trainer state
    cache = FeatureCache.open(cache_dir)
    best = load_combiner(out / "best")
    assert json.loads((out / "best" / "combiner.json").read_text())["extra"]["epoch"] == result.best_epoch
    rescored = evaluate_cache(cache, best, show_progress=False).headline
    assert rescored == pytest.approx(metrics["best"]["value"])
    # every validation's per-query ranks are kept, and give back the logged recall
    evaluations = read_ranks(out / "ranks.npz")
    assert list(evaluations) == ["val/epoch-0000", "val/epoch-0002", "val/epoch-0003"]
    for name, epoch in (("val/epoch-0002", 2), ("val/epoch-0003", 3)):
        for category in ("dress", "shirt"):
            ranks = torch.from_numpy(evaluations[name][category].ranks.astype(np.int64))
            logged = metrics["history"][epoch][f"val/{category}/R@10"]
            assert recall_from_ranks(ranks, (10,))[10] == pytest.approx(logged)
    accounting = metrics["evaluation"]
    assert accounting["split"] == "val" and accounting["ranks_file"] == "ranks.npz"
    assert accounting["excluded_queries"]["dress"] == {"missing_image": 0, "target_withheld": 0}
    assert set(accounting["queries"]) == {"dress", "shirt"} and accounting["missing_images"]["shirt"] == 0
    state = read_state(out)
    assert (state["epoch"], state["step"], state["world_size"]) == (3, 30, 1)
    assert {"optimizer", "scheduler", "rng", "history", "best", "identity", "objective"} <= set(state)
    assert state["optimizer"] is None  # a finished run keeps no optimiser state
    assert state["objective"]["features"] == cache.identity()
    assert set(state["rng"][0]) >= {"python", "numpy", "torch", "generators"}
    assert set(state["rng"][0]["generators"]) == {"batch", "sampler"}

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/active_fraction", "train/loss", "val/headline", "time/mean_sample_s"} <= tags
    assert [e.step for e in events.Scalars("step/loss")] == list(range(3, 31, 3))


def test_sum_combiner_has_nothing_to_train(cache_dir, tmp_path):
    result = train(quick_config(cache_dir, tmp_path / "run", combiner="sum", combiner_options={}, epochs=1))
    baseline = sum_baseline(cache_dir)
    assert [r["val/headline"] for r in result.history] == pytest.approx([baseline, baseline])
    assert read_state(tmp_path / "run")["optimizer"] is None


def test_in_batch_contrastive_as_clip4cir(cache_dir, tmp_path):
    result = train(quick_config(cache_dir, tmp_path / "run", loss="contrastive", loss_options={"logit_scale": 100.0},
                                negatives="in-batch", epochs=2, lr=1e-3))
    assert "sampler/queries" not in result.history[-1]
    assert result.history[-1]["time/mean_sample_s"] == 0.0
    assert result.history[-1]["train/loss"] < result.history[1]["train/loss"] * 1.5


def test_bf16_autocast_on_cpu(cache_dir, tmp_path):
    result = train(quick_config(cache_dir, tmp_path / "run", precision="bf16", epochs=1, grad_clip=1.0,
                                warmup_steps=3))
    assert np.isfinite(result.history[-1]["train/loss"])


def test_existing_run_is_not_overwritten(cache_dir, tmp_path):
    train(quick_config(cache_dir, tmp_path / "run", combiner="sum", combiner_options={}, epochs=0))
    with pytest.raises(ConfigError, match="already holds a training run; pass --resume"):
        train(quick_config(cache_dir, tmp_path / "run", combiner="sum", combiner_options={}, epochs=0))


def test_resume_refuses_a_changed_config(cache_dir, tmp_path):
    train(quick_config(cache_dir, tmp_path / "run", epochs=1))
    with pytest.raises(ConfigError, match=r"cannot resume with a different config \(lr: checkpoint 0.003, now 0.1\)"):
        train(quick_config(cache_dir, tmp_path / "run", epochs=2, lr=0.1, resume=True))


def test_resume_of_a_finished_run_only_reports(cache_dir, tmp_path):
    first = train(quick_config(cache_dir, tmp_path / "run", epochs=1))
    again = train(quick_config(cache_dir, tmp_path / "run", epochs=1, resume=True))
    assert again.status == "complete" and again.steps == first.steps
    assert again.history == first.history


@pytest.mark.parametrize(("overrides", "message"), [
    ({"combiner": "mlp"}, "unknown combiner 'mlp'"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"negatives": "hardest"}, "unknown negative sampler 'hardest'"),
    ({"combiner_options": {"width": 3}}, "combiner 'combiner'"),
    ({"batch_size": 1000}, "exceeds the 320 training triplets"),
    ({"categories": ["toptee"]}, "holds no train split of toptee"),
    ({"precision": "fp16"}, "fp16 autocast needs a GPU"),
])
def test_bad_settings_are_one_line_errors(cache_dir, tmp_path, overrides, message):
    with pytest.raises(ConfigError if "train split" not in message else CacheMismatchError) as info:
        train(quick_config(cache_dir, tmp_path / "run", **overrides))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_cache_is_a_one_line_error(tmp_path):
    with pytest.raises(CacheMismatchError, match="feature cache folder not found"):
        train(quick_config(tmp_path / "absent", tmp_path / "run"))
