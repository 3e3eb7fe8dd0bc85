"""``compare --jobs``: runs trained in worker processes give the serial runs' results; bad jobs and failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cirlab.cli import main
from cirlab.compare import parallel
from cirlab.compare.parallel import AUTO_JOBS_LIMIT, resolve_jobs, threads_per_job
from cirlab.compare.runner import compare
from cirlab.errors import CirlabError, ConfigError
from tests.compare.datasets import make_comparison_data

OVERRIDES = {"batch_size": 32, "num_negatives": 4, "tensorboard": False, "warmup_steps": 0, "lr": 3e-3,
             "combiner_options": {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.0}}
STRATEGIES = ["random", "semi-hard"]


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return make_comparison_data(tmp_path_factory.mktemp("parallel-data"), with_images=False)[0]


def ranks_of(out):
    """Every per-query rank array of every run, by run and key."""
    found = {}
    for path in sorted((out / "runs").glob("*/seed-*/ranks.npz")):
        with np.load(path) as ranks:
            found.update({(path.parent.relative_to(out).as_posix(), key): ranks[key] for key in ranks.files})
    return found


@pytest.mark.slow
def test_two_jobs_give_the_serial_runs_results(features, tmp_path):
    serial = compare("synthetic", STRATEGIES, tmp_path / "serial", seeds=2, epochs=2, features=features,
                     overrides=OVERRIDES, queries=0, draws=200)
    concurrent = compare("synthetic", STRATEGIES, tmp_path / "concurrent", seeds=2, epochs=2, features=features,
                         overrides=OVERRIDES, queries=0, draws=200, jobs=2)
    serial_ranks, concurrent_ranks = ranks_of(tmp_path / "serial"), ranks_of(tmp_path / "concurrent")
    assert len(serial_ranks) > 0 and serial_ranks.keys() == concurrent_ranks.keys()
    for key, ranks in serial_ranks.items():
        assert np.array_equal(ranks, concurrent_ranks[key]), key
    assert list(concurrent.strategies) == list(serial.strategies) == STRATEGIES
    for name, summary in serial.strategies.items():
        assert ({key: stats.values for key, stats in concurrent.strategies[name].selected.items()}
                == {key: stats.values for key, stats in summary.selected.items()})
    for strategy in STRATEGIES:
        for seed in (0, 1):
            history = [json.loads((out / "runs" / strategy / f"seed-{seed}" / "metrics.json").read_text())["history"]
                       for out in (tmp_path / "serial", tmp_path / "concurrent")]
            assert [e.get("train/loss") for e in history[0]] == [e.get("train/loss") for e in history[1]]


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_others_are_kept(features, tmp_path):
    out = tmp_path / "cmp"
    compare("synthetic", ["random"], out, seeds=1, epochs=1, features=features, overrides=OVERRIDES, queries=0,
            draws=200)
    damaged = out / "runs" / "random" / "seed-0"
    state = damaged / "last" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:-64] + bytes(64))
    (damaged / "metrics.json").unlink()  # the run looks interrupted, so the comparison resumes it
    with pytest.raises(CirlabError, match="trainer_state.pt"):
        compare("synthetic", ["random", "semi-hard"], out, seeds=1, epochs=1, features=features,
                overrides=OVERRIDES, queries=0, draws=200, jobs=2)
    # the other run trained to the end in the other worker, and a rerun would reuse it
    metrics = json.loads((out / "runs" / "semi-hard" / "seed-0" / "metrics.json").read_text())
    assert metrics["status"] == "complete"


def test_without_worker_processes_the_runs_train_one_after_another(features, tmp_path, monkeypatch, caplog):
    def no_semaphores(*args, **kwargs):
        raise OSError("[Errno 38] Function not implemented")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_semaphores)
    serial = compare("synthetic", ["random"], tmp_path / "serial", seeds=2, epochs=1, features=features,
                     overrides=OVERRIDES, queries=0, draws=200)
    with caplog.at_level("WARNING", logger="cirlab"):
        fallback = compare("synthetic", ["random"], tmp_path / "fallback", seeds=2, epochs=1, features=features,
                           overrides=OVERRIDES, queries=0, draws=200, jobs=2)
    assert "cannot start worker processes" in caplog.text and "one after another" in caplog.text
    assert fallback.strategies["random"].selected["headline"].values == serial.strategies["random"].selected[
        "headline"].values


def test_auto_jobs_is_one_per_core_on_a_cpu_up_to_the_limit(monkeypatch):
    monkeypatch.setattr(parallel, "available_cpus", lambda: 2)
    assert resolve_jobs("auto", runs=24, device="cpu") == 2
    assert resolve_jobs("auto", runs=1, device="cpu") == 1
    monkeypatch.setattr(parallel, "available_cpus", lambda: 64)
    assert resolve_jobs("auto", runs=24, device="cpu") == AUTO_JOBS_LIMIT


def test_jobs_are_at_most_the_runs_and_share_the_cores(monkeypatch):
    monkeypatch.setattr(parallel, "available_cpus", lambda: 8)
    assert resolve_jobs(16, runs=3) == 3
    assert resolve_jobs(1, runs=3) == 1
    assert threads_per_job(2) == 4 and threads_per_job(3) == 2 and threads_per_job(16) == 1


@pytest.mark.parametrize("jobs", [0, -2, "many", 1.5])
def test_bad_jobs_are_refused(jobs):
    with pytest.raises(ConfigError, match="jobs must be"):
        resolve_jobs(jobs, runs=4)


def test_jobs_under_torchrun_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="torchrun"):
        resolve_jobs(2, runs=4)
    assert resolve_jobs(1, runs=4) == 1


@pytest.mark.parametrize("value", ["0", "two"])
def test_the_command_line_refuses_bad_jobs_in_one_line(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["compare", "--strategies", "random", "--out", str(tmp_path / "out"), "--jobs", value])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--jobs" in error and "Traceback" not in error
